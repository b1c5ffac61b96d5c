"""`nbconfine serve` as a JupyterHub managed service: add this to jupyterhub_config.py.

The Hub starts it, as the course's instructor (the Hub runs as root for that), restarts it
if it exits, and stops it with SIGINT (the service finishes the round in hand), then
SIGTERM and SIGKILL after the spawner's interrupt_timeout and term_timeout (10 s and 5 s
by default; c.LocalProcessSpawner.interrupt_timeout raises the first for every local
spawner). A round cut short that way is graded again at the next start: nothing is lost.
Its output (one line per submission) is in the Hub's log. Students need nothing new:
`nbgrader fetch_feedback`, or the Assignment List's "Fetch Feedback".
"""
COURSE = "/home/instructor/normalization-course"  # the instructor's course directory

c = get_config()  # noqa: F821 (provided by JupyterHub)
c.JupyterHub.services = [
    {
        "name": "nbconfine-normalization-layers",
        "command": [f"{COURSE}/.venv/bin/nbconfine", "serve", "--jobs", "2"],
        "cwd": COURSE,
        "user": "instructor",  # the owner of the course directory
        "environment": {
            "NBGRADER_EXCHANGE": "/srv/nbgrader/exchange",  # as `make exchange` made it
            # "NBGRADER_DB_URL": "postgresql+psycopg2://grader:...@127.0.0.1:5432/gradebook",
        },
    },
]
