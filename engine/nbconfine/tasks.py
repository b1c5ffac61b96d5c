"""The functions the instructor's side sends to Dask workers.

A Dask scheduler unpickles every task it schedules: these are pickled by value
(nbconfine.cluster registers this module with cloudpickle), so a stock scheduler, with
nothing of nbconfine installed, runs them; they import the engine only on the worker.
"""


def grade_submission(student, assignment, files, instructor_files, db_url, topic):
    """Grade one submission on the worker that runs this (nbconfine.cluster)."""
    from nbconfine import cluster
    return cluster.grade_submission(student, assignment, files, instructor_files, db_url,
                                    topic)


def worker_confinement():
    """The confinement of this worker's sandboxes, as plain data."""
    from nbconfine import cluster
    return cluster.worker_confinement()
