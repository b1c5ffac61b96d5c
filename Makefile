# The normalization-layers course, graded by the engine in engine/ (nbconfine): `make help`
# lists the targets. Assignments are the folders of source/ that hold notebooks.
PYTHON_BASE ?= python3.11
VENV ?= .venv
JOBS ?= $(shell nproc)
ROSTER ?= roster.csv
# more options for pip (`make install`): PyPI's torch 2.13.0 is its CUDA build (GBs, runs on
# CPUs too); PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu
# --extra-index-url https://pypi.org/simple" takes the CPU build
PIP_ARGS ?=
N ?= 80
# pytest-xdist processes for `make test` (the suite is mostly waits and single-core work)
TEST_WORKERS ?= 2
# nbgrader's exchange root; empty: NBGRADER_EXCHANGE, else the one `make exchange` made
# (nbconfine/exchange.py's default_root)
EXCHANGE ?=
UNCONFINED ?=
# A Dask cluster (nbconfine/cluster.py): `make scheduler`, then `make worker` on each machine.
HOST ?= 127.0.0.1
PORT ?= 8786
SCHEDULER ?=
NWORKERS ?= $(shell nproc)
ALLOWED_FAILURES ?= 2
CLUSTER ?=
SERVE ?=
ASSIGNMENTS := $(sort $(patsubst source/%/,%,$(dir $(wildcard source/*/*.ipynb))))
PY := $(VENV)/bin/python
NBGRADER := $(VENV)/bin/nbgrader
NBCONFINE := $(VENV)/bin/nbconfine
STAMP := $(VENV)/.installed
ENGINE_JUPYTER := $(abspath engine/nbconfine/jupyter)
# the engine's nbgrader settings and JupyterLab style for everyone using the environment
# and a quicker start of every nbgrader command (nbconfine-quick-start.pth says why), and
# of `nbgrader validate`'s kernel (ipython_kernel_config.py)
JUPYTER_LINKS = mkdir -p $(VENV)/etc/jupyter $(VENV)/etc/ipython \
    $(VENV)/share/jupyter/labextensions && \
  ln -sfn $(ENGINE_JUPYTER)/nbgrader_config.py $(VENV)/etc/jupyter/nbgrader_config.py && \
  ln -sfn $(ENGINE_JUPYTER)/ipython_kernel_config.py $(VENV)/etc/ipython/ipython_kernel_config.py && \
  ln -sfn $(ENGINE_JUPYTER)/labextensions/nbconfine-lab $(VENV)/share/jupyter/labextensions/ && \
  ln -sfn $(ENGINE_JUPYTER)/nbconfine-quick-start.pth \
    "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"/
export PATH := $(abspath $(VENV))/bin:$(PATH)
ifneq ($(EXCHANGE),)
export NBGRADER_EXCHANGE := $(abspath $(EXCHANGE))
endif

.PHONY: help install figures release roster autograde feedback grades demo test clean mutants bench \
	guard chaos exchange publish collect return scheduler worker serve status

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

install: $(STAMP)  ## create .venv: the pinned requirements and the engine (editable)

$(STAMP): requirements.txt $(wildcard engine/pyproject.toml engine/nbconfine/jupyter/*.pth \
	  engine/nbconfine/jupyter/ipython_kernel_config.py)
ifeq ($(VENV),.venv)
	$(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PIP_ARGS) -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e engine
	$(JUPYTER_LINKS)
	touch $@
else
	@$(PY) -c "import torch, nbgrader, pytest, matplotlib, nbconfine" || \
	  { echo "VENV=$(VENV) lacks the requirements: $(PY) -m pip install -r requirements.txt" \
	    "&& $(PY) -m pip install --no-deps --no-build-isolation -e engine"; exit 1; }
	touch $@
endif

figures: $(STAMP)  ## redraw the figures in source/normalization/figures
	$(PY) -m course.figures source/normalization/figures

release: $(STAMP)  ## regenerate release/ (the student versions) from source/
	rm -rf release
	$(foreach a,$(ASSIGNMENTS),$(NBGRADER) generate_assignment $(a) --force --log-level=ERROR &&) true

roster: $(STAMP)  ## import students from ROSTER=path.csv (id,first_name,last_name,email)
	@test -f "$(ROSTER)" || { echo "make roster: no roster file '$(ROSTER)'; use make roster ROSTER=path.csv" \
	  "(CSV columns id,first_name,last_name,email, as in roster.example.csv)" >&2; exit 1; }
	$(NBGRADER) db student import "$(ROSTER)" --log-level=WARN
	@$(NBGRADER) db student list

exchange: $(STAMP)  ## create nbgrader's exchange (EXCHANGE=DIR, remembered for later commands; default ../nbgrader-exchange, as root /srv/nbgrader/exchange)
	$(NBCONFINE) exchange

publish: $(STAMP)  ## release every assignment to the students through the exchange
	@$(NBCONFINE) exchange --check publish
	$(foreach a,$(ASSIGNMENTS),$(NBGRADER) release_assignment $(a) --force --log-level=WARN &&) true

collect: $(STAMP)  ## collect the latest submission of each student from the exchange into submitted/
	$(NBCONFINE) collect

return: $(STAMP)  ## return feedback/ to the students through the exchange (those submitted through it)
	$(NBCONFINE) return

serve: $(STAMP)  ## grade each submission as it reaches the exchange, return its feedback (SCHEDULER=, JOBS=, UNCONFINED=1 as for autograde)
	UNCONFINED=$(UNCONFINED) $(NBCONFINE) serve --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

status: $(STAMP)  ## what `make serve` has waiting, grading and done
	$(NBCONFINE) status

autograde: $(STAMP)  ## autograde every submission in submitted/ (a Dask cluster: SCHEDULER=tcp://HOST:PORT; UNCONFINED=1: accept weaker sandboxes)
	UNCONFINED=$(UNCONFINED) $(NBCONFINE) autograde --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

# A task whose worker died is retried on another; ALLOWED_FAILURES deaths later it is left
# ungraded (its previous grades kept; exit status 3). A worker holds only the submission it
# grades (worker-saturation 1.0; Dask's 1.1 sends each one-thread worker a second task),
# so a death counts against that submission alone, never against one queued behind it.
# Without the dashboard Dask still serves its HTTP endpoints (health, metrics): on HOST too.
scheduler: $(STAMP)  ## start a Dask scheduler on HOST:PORT (default 127.0.0.1:8786)
	DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=$(ALLOWED_FAILURES) \
	  DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 \
	  $(VENV)/bin/dask scheduler --host $(HOST) --port $(PORT) --no-dashboard \
	  --dashboard-address $(HOST):8787

worker: $(STAMP)  ## start NWORKERS grading processes for SCHEDULER=tcp://HOST:PORT (UNCONFINED=1: their sandboxes may be weaker)
	@test -n "$(SCHEDULER)" || { echo "make worker: name the scheduler: make worker SCHEDULER=tcp://HOST:PORT" >&2; exit 1; }
	cd $(or $(TMPDIR),/tmp) && UNCONFINED=$(UNCONFINED) NBCONFINE_COURSE=$(CURDIR) $(abspath $(VENV))/bin/dask worker $(SCHEDULER) \
	  --nworkers $(NWORKERS) --nthreads 1 --preload nbconfine.cluster --no-dashboard

feedback: $(STAMP)  ## write feedback/ for every autograded submission
	$(NBCONFINE) feedback

grades: $(STAMP)  ## export grades.csv, the per-problem CSV, grades_distribution.png; print the table
	$(NBCONFINE) grades

demo: release  ## the main job: release, autograde the demo submissions, feedback, grades
	$(PY) -m course.demo submitted
	$(MAKE) --no-print-directory autograde feedback grades

test: $(STAMP)  ## run the test suite (real nbgrader commands) on TEST_WORKERS processes
	$(PY) -m pytest tests -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

clean:  ## remove generated grading state (gradebook, autograded/, feedback/, demo students)
	rm -rf gradebook.db feedback grades.csv grades_by_problem.csv grades_distribution.png submitted/demo-*
	find autograded -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

mutants: $(STAMP)  ## autograde the answer catalog and print the kill table
	$(PY) tests/mutation.py

guard: $(STAMP)  ## break the grader on purpose (tests/guard.py, JOBS at once): every breakage must be caught
	$(PY) tests/guard.py --jobs $(JOBS)

chaos: $(STAMP)  ## inject grader faults (killed zygote, worker, autograde; PostgreSQL restart; full disk) into real runs: table
	$(PY) tests/chaos.py

bench: $(STAMP)  ## benchmark: N submissions of each assignment against the compute floor, 1 vs 2 jobs, stages, validate; then stock nbgrader against the engine on a course without torch (CLUSTER=1: Dask workers; SERVE=1: make serve's latency and burst throughput)
	$(if $(SERVE),$(PY) tests/bench_serve.py $(N),$(PY) tests/bench.py $(N) $(if $(CLUSTER),--cluster,&& $(PY) tests/bench_stock.py))
