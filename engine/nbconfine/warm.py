"""nbgrader's per-notebook set-up, paid once per grading worker instead.

nbgrader builds anew for every notebook what does not change between notebooks: each
``Gradebook(...)`` (about ten per submission) creates a database engine, with its empty
cache of compiled queries, checks that every table and the course's row exist, and
closes its connections when done; each metadata check loads nbgrader's JSON schemas from
disk and has jsonschema check the schema itself before each cell. ``install()``, run by
each grading worker (nbconfine.worker, nbconfine.cluster), keeps one engine per gradebook
URL with its connections open (a server's are tested before each use, so a restarted
PostgreSQL costs nothing) and the schemas loaded and checked, for the life of the
process. What nbgrader reads, writes and decides is unchanged.
"""
import jsonschema
from nbgrader import api
from nbgrader.nbgraderformat import common
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

_engines = {}  # gradebook URL -> its engine, tables known to exist
_courses = set()  # (gradebook URL, course id) whose course row is known to exist
_schemas = {}  # schema version -> the schema nbgrader loaded
_installed = False
_idle_processor = False


def grading_worker():
    """Whether this process is a grading worker (``install`` ran in it): it grades
    notebook after notebook for as long as it lives."""
    return _installed


def idle_processor():
    """Whether this grading worker's machine has a processor its graders leave idle
    (fewer of them than processors): work done ahead of time there costs no one."""
    return _idle_processor


def install(idle_processor=False):
    """Keep gradebook engines and metadata schemas for the life of this process;
    ``idle_processor``: see ``idle_processor()``."""
    global _installed, _idle_processor
    _idle_processor = idle_processor
    if _installed:
        return
    _installed = True
    nbgrader_gradebook_init = api.Gradebook.__init__
    nbgrader_validator_init = common.BaseMetadataValidator.__init__

    def gradebook_init(self, db_url, course_id="default_course", authenticator=None):
        if db_url not in _engines:  # nbgrader's own set-up: tables, alembic version
            nbgrader_gradebook_init(self, db_url, course_id, authenticator)
            self.db.remove()
            self.engine.dispose()
            _engines[db_url] = create_engine(db_url, echo=False, future=True,
                                             pool_pre_ping=not db_url.startswith("sqlite"))
        self.engine = _engines[db_url]
        self.db = scoped_session(sessionmaker(autoflush=True, bind=self.engine, future=True))
        if (db_url, course_id) not in _courses:  # its row, made if missing, stays
            self.check_course(course_id=course_id)
            _courses.add((db_url, course_id))
        self.course_id = course_id
        self.authenticator = authenticator

    def validator_init(self):
        if self.schema_version not in _schemas:
            nbgrader_validator_init(self)
            _schemas[self.schema_version] = self.schema
        self.schema = _schemas[self.schema_version]

    def gradebook_close(self):  # the session ends; the engine keeps its connections
        self.db.remove()

    api.Gradebook.__init__ = gradebook_init
    api.Gradebook.close = gradebook_close
    common.BaseMetadataValidator.__init__ = validator_init
    common.jsonschema = _CheckedSchemas()


class _CheckedSchemas:
    """``jsonschema`` as nbgrader's metadata validators call it, each schema checked once
    (jsonschema.validate checks the schema on every call)."""

    def __init__(self):
        self.validators = {}  # id(schema) -> its validator, which keeps the schema alive

    def validate(self, instance, schema):
        validator = self.validators.get(id(schema))
        if validator is None:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validator = self.validators[id(schema)] = kind(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error
