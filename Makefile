# The normalization-layers course: `make help` lists the targets.
PYTHON_BASE ?= python3.11
VENV ?= .venv
JOBS ?= $(shell nproc)
ROSTER ?= roster.csv
N ?= 80
# A Dask cluster (normgrade/cluster.py): `make scheduler`, then `make worker` on each machine.
HOST ?= 127.0.0.1
PORT ?= 8786
SCHEDULER ?=
NWORKERS ?= $(shell nproc)
ALLOWED_FAILURES ?= 2
CLUSTER ?=
ASSIGNMENTS := normalization batchnorm
PY := $(VENV)/bin/python
NBGRADER := $(VENV)/bin/nbgrader
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install figures release roster autograde feedback grades demo test clean mutants bench \
	scheduler worker

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

install: $(STAMP)  ## create .venv with the pinned requirements (or check VENV=...)

$(STAMP): requirements.txt
ifeq ($(VENV),.venv)
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@
else
	@$(PY) -c "import torch, nbgrader, pytest, matplotlib" || \
	  { echo "VENV=$(VENV) lacks the requirements: $(PY) -m pip install -r requirements.txt"; exit 1; }
	touch $@
endif

figures: $(STAMP)  ## redraw the figures in source/normalization/figures
	$(PY) -m normgrade.figures source/normalization/figures

release: $(STAMP)  ## regenerate release/ (the student versions) from source/
	rm -rf release
	$(foreach a,$(ASSIGNMENTS),$(NBGRADER) generate_assignment $(a) --force --log-level=ERROR &&) true

roster: $(STAMP)  ## import students from ROSTER=path.csv (id,first_name,last_name,email)
	@test -f "$(ROSTER)" || { echo "make roster: no roster file '$(ROSTER)'; use make roster ROSTER=path.csv" \
	  "(CSV columns id,first_name,last_name,email, as in roster.example.csv)" >&2; exit 1; }
	$(NBGRADER) db student import "$(ROSTER)" --log-level=WARN
	@$(NBGRADER) db student list

autograde: $(STAMP)  ## autograde every submission in submitted/ (on a Dask cluster: SCHEDULER=tcp://HOST:PORT)
	$(PY) -m normgrade.autograde --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# A task whose worker died is retried on another; ALLOWED_FAILURES deaths later it scores zero.
scheduler: $(STAMP)  ## start a Dask scheduler on HOST:PORT (default 127.0.0.1:8786)
	DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=$(ALLOWED_FAILURES) \
	  $(VENV)/bin/dask scheduler --host $(HOST) --port $(PORT) --no-dashboard

worker: $(STAMP)  ## start NWORKERS grading processes for SCHEDULER=tcp://HOST:PORT
	@test -n "$(SCHEDULER)" || { echo "make worker: name the scheduler: make worker SCHEDULER=tcp://HOST:PORT" >&2; exit 1; }
	cd $(or $(TMPDIR),/tmp) && PYTHONPATH=$(CURDIR) $(abspath $(VENV))/bin/dask worker $(SCHEDULER) \
	  --nworkers $(NWORKERS) --nthreads 1 --preload normgrade.cluster --no-dashboard

feedback: $(STAMP)  ## write feedback/ for every autograded submission
	$(foreach a,$(ASSIGNMENTS),$(NBGRADER) generate_feedback $(a) --force --log-level=ERROR &&) true

grades: $(STAMP)  ## export grades.csv, the per-problem CSV, grades_distribution.png; print the table
	$(PY) -m normgrade.report

demo: release  ## the main job: release, autograde the demo submissions, feedback, grades
	$(PY) -m normgrade.examples submitted
	$(MAKE) --no-print-directory autograde feedback grades

test: $(STAMP)  ## run the test suite (real nbgrader commands)
	$(PY) -m pytest tests -q -p no:cacheprovider

clean:  ## remove generated grading state (gradebook, autograded/, feedback/, demo students)
	rm -rf gradebook.db feedback grades.csv grades_by_problem.csv grades_distribution.png submitted/demo-*
	find autograded -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

mutants: $(STAMP)  ## autograde the answer catalog and print the kill table
	$(PY) tests/mutation.py

bench: $(STAMP)  ## benchmark: N generated submissions, 1 vs 2 jobs, the kernel floor (CLUSTER=1: Dask workers)
	$(PY) tests/bench.py $(N) $(if $(CLUSTER),--cluster)
