import { FEEDBACK_CATEGORIES, type FeedbackSummary } from "../../contract/api/feedback.js";
import { Panel, TableWrap } from "../components.js";
import { count, decimal } from "../format.js";
import { type Loaded, load } from "../load.js";
import type { Session } from "../session.js";

// The firmware page's "Feedback beside fault rates": per model and firmware, what customers told the support
// desk next to the cohort's devices, device-hours, fault rate and the ratings its devices reported.

export function loadFirmwareFeedback(session: Session, from: string, model: string | undefined) {
  return load(
    session.api.api.v1.feedback.summary.$get({ query: { from, ...(model === undefined ? {} : { model }) } }),
  );
}

const mean = (value: number | null, n: number) => (value === null ? "–" : `${decimal(value)} (n=${n})`);

export function FirmwareFeedbackPanel(props: { loaded: Loaded<FeedbackSummary>; windowDays: number }) {
  return (
    <Panel
      title="Feedback beside fault rates"
      live="fw-feedback"
      wide
      loaded={props.loaded}
      isEmpty={(s) => s.groups.length === 0}
      empty={`No version reported and no feedback was recorded in the last ${props.windowDays} days.`}
      render={(s) => (
        <>
          <p class="help">
            Per version over the last {props.windowDays} days: what customers told the support desk (ratings
            1-5) beside the version's active devices, device-hours, faults per 1,000 device-hours and the
            ratings its devices reported (0-10). Each mean says how many ratings it is of.
          </p>
          <TableWrap label="Customer feedback beside fault rates per model and firmware">
            <table class="fw-feedback">
              <thead>
                <tr>
                  <th scope="col">Model</th>
                  <th scope="col">Firmware</th>
                  <th scope="col">Feedback</th>
                  {FEEDBACK_CATEGORIES.map((c) => (
                    <th scope="col">{c}</th>
                  ))}
                  <th scope="col">Desk rating</th>
                  <th scope="col">Devices</th>
                  <th scope="col">Device-hours</th>
                  <th scope="col">Faults / 1,000 h</th>
                  <th scope="col">Device rating</th>
                </tr>
              </thead>
              <tbody>
                {s.groups.map((g) => (
                  <tr>
                    <td>{g.model}</td>
                    <td>{g.firmware}</td>
                    <td class="num">{count(g.feedback.total)}</td>
                    {FEEDBACK_CATEGORIES.map((c) => (
                      <td class="num">{count(g.feedback.byCategory[c])}</td>
                    ))}
                    <td class="num">{mean(g.feedback.meanRating, g.feedback.ratings)}</td>
                    <td class="num">{count(g.devices)}</td>
                    <td class="num">{count(g.exposureHours)}</td>
                    <td class="num">{g.faultsPer1000h === null ? "–" : decimal(g.faultsPer1000h)}</td>
                    <td class="num">{mean(g.deviceRatings.mean, g.deviceRatings.count)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        </>
      )}
    />
  );
}
