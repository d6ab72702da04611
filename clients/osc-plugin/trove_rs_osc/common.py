"""What the commands share: requests through troveclient's database client, instance and backup
lookup by name or id, and columns that print nested values readably in a table yet stay
structured with `-f json`.

API errors need no handling here: troveclient's client raises them with the message of Trove's
envelope (`Resource … cannot be found. (HTTP 404) (Request-ID: req-…)`), and the `openstack`
shell prints that and exits non-zero.
"""

from urllib.parse import quote, urlencode

from cliff import columns
from osc_lib import utils


def _client(app):
    """troveclient's session client; its endpoint already ends with `/v1.0/{tenant}`."""
    return app.client_manager.database.client


def get(app, path, **query):
    """GETs `path` (relative to the endpoint) with the query keys that are not None."""
    query = {k: v for k, v in query.items() if v is not None}
    url = path + ("?" + urlencode(query) if query else "")
    _, body = _client(app).get(url)
    return body


def post(app, path, body):
    _, answer = _client(app).post(path, body=body)
    return answer


def put(app, path, body):
    _, answer = _client(app).put(path, body=body)
    return answer


def delete(app, path):
    _, answer = _client(app).delete(path)
    return answer


def instance_path(instance_id, *rest):
    return "/".join(["/instances", quote(instance_id, safe="")] + [quote(str(r), safe="") for r in rest])


def find_instance(app, name_or_id):
    """The instance by id or name, as troveclient's own commands find it."""
    return utils.find_resource(app.client_manager.database.instances, name_or_id)


def find_backup(app, name_or_id):
    return utils.find_resource(app.client_manager.database.backups, name_or_id)


def show(record, fields, formatters=None):
    """A ShowOne answer: `fields` of `record`, through `formatters` where the value is set."""
    formatters = formatters or {}
    values = []
    for f in fields:
        v = record.get(f)
        values.append(formatters[f](v) if f in formatters and v is not None else v)
    return tuple(fields), tuple(values)


class Dict(columns.FormattableColumn):
    """A JSON object: `key=value, …` in a table."""

    def human_readable(self):
        return ", ".join(f"{k}={v}" for k, v in self._value.items() if v is not None)

    def machine_readable(self):
        return self._value


class Lines(columns.FormattableColumn):
    """A list: one item a line in a table (items rendered by `line`)."""

    @staticmethod
    def line(item):
        return ", ".join(f"{k}={v}" for k, v in item.items()) if isinstance(item, dict) else str(item)

    def human_readable(self):
        return "\n".join(self.line(i) for i in self._value)

    def machine_readable(self):
        return self._value
