# One image for both commands: `httpgw` (the default) and `fastfilesrv`. See docs/DEPLOY.md.
#   docker build -t httpgw .
#   docker run -p 8080:8080/tcp -p 8080:8080/udp httpgw
#   docker run -v /srv/files:/srv/files:ro httpgw fastfilesrv --gateway GATEWAY:8080 --root /srv/files
# test/pack-install.test.ts keeps this recipe in step with the tarballs: it lints this file, and it
# installs the tarballs with this file's own `npm install` line.
ARG NODE_IMAGE=node:20.20-bookworm-slim

# Build: the workspace's tests are not run here; the tarballs are what CI tested.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN npx --yes pnpm@10.34.8 install --frozen-lockfile \
 && npx --yes pnpm@10.34.8 release:pack

# Run: Node and the two tarballs, nothing else (no compiler, no pnpm, no sources).
FROM ${NODE_IMAGE}
WORKDIR /tmp/release
COPY --from=build /src/release/ ./
# The tarballs carry every dependency: no registry needed, nothing left behind but the install.
RUN npm install -g --offline --no-audit --no-fund ./*.tgz \
 && rm -rf /tmp/release /root/.npm
# The image's unprivileged user (uid 1000); mount secrets and served files readable by it.
USER node
WORKDIR /home/node
EXPOSE 8080/tcp 8080/udp
# The gateway's health; the file servers' containers turn it off (compose: healthcheck: disable).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM (docker stop) drains: give it --drain-timeout plus a margin (docker stop -t 40; compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["httpgw", "0.0.0.0", "8080"]
