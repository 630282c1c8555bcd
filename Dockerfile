# syntax=docker/dockerfile:1
# One image for every Healthscore service: `docker run IMAGE ingest|scorer|alerts|api|migrate|topics`.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/healthscore
WORKDIR /src
# Dependencies first, in their own layer, so a code change does not reinstall them: install the
# project's declared dependencies from pyproject.toml alone (the package itself comes next).
COPY pyproject.toml ./
RUN /opt/healthscore/bin/python - <<'PY' > /tmp/requirements.txt
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["rocksdb"]))
PY
RUN /opt/healthscore/bin/pip install -r /tmp/requirements.txt
COPY README.md ./
COPY healthscore ./healthscore
COPY schemas ./schemas
COPY services ./services
# Not editable: the runtime image carries the installed package, not the source tree.
RUN /opt/healthscore/bin/pip install --no-deps '.[rocksdb]'

FROM python:3.11-slim
# A fixed, non-root uid/gid so Kubernetes `runAsNonRoot` and volume ownership (fsGroup) agree.
# The scorer's RocksDB tables live in /var/lib/healthscore/scorer (a volume in compose, a PVC in
# the Helm chart); created here so a fresh named volume inherits the non-root owner.
RUN groupadd --system --gid 10001 healthscore \
 && useradd --system --uid 10001 --gid healthscore --home-dir /var/lib/healthscore \
      --create-home --shell /usr/sbin/nologin healthscore \
 && install -d -o healthscore -g healthscore /var/lib/healthscore/scorer
COPY --from=build /opt/healthscore /opt/healthscore
ENV PATH=/opt/healthscore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/lib/healthscore
USER 10001:10001
ENTRYPOINT ["healthscore"]
CMD ["--help"]
