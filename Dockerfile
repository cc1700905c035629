# The rate-limiting gateway. Stage 1 compiles TypeScript; the last stage ships only the
# compiled code and production dependencies, and runs as the unprivileged `node` user.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY proto ./proto
USER node
EXPOSE 8000 9000
# Checks the admin listener's /healthz on whatever ADMIN_PORT the gateway uses.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD node dist/src/healthcheck.js
# node is PID 1 and handles SIGTERM itself: stop accepting, drain, exit 0.
CMD ["node", "--enable-source-maps", "dist/src/server.js"]
