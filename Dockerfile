FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV FIELDQ_DATA_DIR=/data FIELDQ_LOG_FORMAT=json
VOLUME /data
EXPOSE 1883 8080
# node itself is PID 1 and gets SIGTERM: the journal is flushed before the container stops.
CMD ["node", "--import", "tsx", "cli/fieldq.ts", "start"]
