# bonescan: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# torch threads sleep instead of spinning while they wait: the server shares the CPU with its own
# training jobs, and spinning made inference 5x slower on a busy 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: run run-pacs test venv system-deps datastore clean-datastore reset-models

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==24.3.1
	$(PY) -m pip install --quiet --no-deps -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -c "import monailabel.main, bonescan.io, bonescan.phantoms.generator"
	touch $(STAMP)

venv: $(STAMP)

# Debian packages (dciodvfy, Orthanc, Chromium) and the OHIF viewer for the browser tests.
system-deps:
	bash scripts/install_system_deps.sh
	bash scripts/fetch_ohif.sh

datastore: $(STAMP)
	$(PY) scripts/make_datastore.py --studies datastore

run: $(STAMP) datastore
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/monailabel start_server \
		--app apps/bonescan --studies datastore --host $(HOST) --port $(PORT)

# The hospital path: Orthanc (Debian packages, data in var/orthanc) holds the demo studies and
# their labels as DICOM SEG; MONAI Label reads and writes them over DICOMweb. Orthanc listens on
# all interfaces of this machine (it has no bind option) but refuses non-local clients
# (RemoteAccessAllowed false). It is stopped when the server stops. The OHIF viewer (fetched once
# from npm by scripts/fetch_ohif.sh into var/ohif) is served by the same server at /viewer/.
ORTHANC_HTTP_PORT ?= 8042
export ORTHANC_HTTP_PORT
DICOMWEB := http://127.0.0.1:$(ORTHANC_HTTP_PORT)/dicom-web

run-pacs: $(STAMP) datastore
	bash scripts/install_system_deps.sh orthanc
	bash scripts/fetch_ohif.sh
	bash scripts/orthanc.sh start
	$(PY) scripts/upload_studies.py datastore --labels datastore/labels/final --url $(DICOMWEB) --no-progress
	@echo "Viewer (OHIF, Bone scan mode): http://$(HOST):$(PORT)/viewer/  (ready when the server has started)"
	trap 'bash scripts/orthanc.sh stop' EXIT; \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/monailabel start_server \
		--app apps/bonescan --studies $(DICOMWEB) --host $(HOST) --port $(PORT) \
		--conf dicomweb_cache $(CURDIR)/var/dicomweb-cache

test: $(STAMP) system-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests

clean-datastore:
	rm -rf datastore/*.dcm datastore/labels datastore/.lock datastore/datastore_v2.json

# Back to the weights shipped with the repository: drop what the server's retraining published.
reset-models:
	rm -rf apps/bonescan/model/local
