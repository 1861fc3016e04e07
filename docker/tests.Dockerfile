# The test container of docker/docker-compose.yml: the pinned Python clients (boto3, pyqldb)
# and a representative suite that reaches qldb-local by its service name, the way a user's CI
# job would. PYTHON_IMAGE defaults to the public image; docker/make-local-bases.sh makes a
# local one (qldb-local-base/python:bookworm) where no registry can be reached.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
COPY compat-tests/python/requirements.txt /tests/requirements.txt
RUN python3 -m venv /venv \
    && /venv/bin/pip install --quiet --disable-pip-version-check -r /tests/requirements.txt
COPY compat-tests/python/journal_verifier.py compat-tests/docker/suite/ /tests/
WORKDIR /tests
CMD ["/venv/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/tests"]
