# One image for every platform service (Airflow components, Spark master/workers, the stream job).
# The same `make setup` as on a laptop: pinned Python packages and Maven-resolved jars.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/cdp
COPY pyproject.toml constraints.txt Makefile README.md ./
COPY jvm ./jvm
COPY jobs ./jobs
RUN make setup PYTHON=python3.11 \
 && .venv/bin/pip install --quiet -c constraints.txt -e ".[deploy]"
COPY . .
ENV PATH=/opt/cdp/.venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/cdp/.venv/bin/python \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
