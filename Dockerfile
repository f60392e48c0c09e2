# docgen: the GitHub App (`docgen serve`) and its scale-out workers (`docgen worker`).
#
#   docker build -t docgen .
#   docker run -p 8000:8000 --env-file .env -v docgen-data:/data docgen       # web + in-process workers
#   docker run --env-file .env -e REDIS_URL=redis://... --no-healthcheck docgen worker
#
# The build needs the package index and nothing else: the tokenizer encodings are
# package data (bot/data/tiktoken), so the running App never downloads them either.

# The newest CPython that pyproject.toml's classifiers name: docgen parses the code under
# review with the ast of the Python it runs on, and an older one skips files written in
# newer syntax (3.12's generics and f-strings, 3.13's type parameter defaults).
ARG PYTHON_IMAGE=python:3.13-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/docgen
ENV PATH=/opt/docgen/bin:$PATH
WORKDIR /src

# 1. Dependencies only, read from pyproject.toml: this layer is rebuilt when
#    pyproject.toml changes, not on every source edit.  The build backend is installed
#    here too, so step 2 needs no network.  EXTRAS (comma-separated) adds optional groups.
ARG EXTRAS=""
COPY pyproject.toml ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); opt = p['project'].get('optional-dependencies', {}); extras = [e for e in os.environ.get('EXTRAS', '').split(',') if e]; print('\n'.join(p['build-system']['requires'] + p['project']['dependencies'] + [r for e in extras for r in opt[e]]))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# 2. The package itself, without touching the index; then prove the vendored
#    encodings are in site-packages and match their sha256 (python -P: import the
#    installed package, not /src/bot).
COPY README.md ./
COPY bot ./bot
RUN pip install --no-deps --no-build-isolation . \
    && python -P -c "from bot.docstrings.tokens import load_encoding; [load_encoding(n) for n in ('o200k_base', 'cl100k_base')]" \
    && docgen --version

# -------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/docgen/bin:$PATH \
    DOCGEN_DATA_DIR=/data \
    PORT=8000

# A fixed, numeric, non-root user: Fly mounts volumes owned by the image's USER, and
# Kubernetes' runAsNonRoot can only check a numeric one.
RUN groupadd --system --gid 10001 docgen \
    && useradd --system --uid 10001 --gid docgen --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin docgen \
    && mkdir /data \
    && chown docgen:docgen /data

COPY --from=build /opt/docgen /opt/docgen

USER 10001:10001
WORKDIR /data
# The SQLite journal and the docstring cache (DOCGEN_DATA_DIR).
VOLUME ["/data"]
EXPOSE 8000

# python, not curl: the slim image has no curl.  Scale-out workers serve no HTTP: run
# them with --no-healthcheck (Fly.io ignores this and uses fly.toml's checks).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# `docker run IMAGE` serves; `docker run IMAGE worker` (or review, setup, ...) runs
# that subcommand instead.  SIGTERM lets running jobs finish (docgen drains for 25 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["docgen"]
CMD ["serve"]
