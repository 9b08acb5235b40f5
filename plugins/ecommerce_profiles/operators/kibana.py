"""KibanaImportOperator: the project's saved objects into Kibana (hook: ecommerce_profiles.hooks.kibana)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseHook, BaseOperator
from airflow.sdk.exceptions import AirflowNotFoundException, AirflowSkipException

from ecommerce_profiles.hooks.kibana import NOT_CONFIGURED_HELP, KibanaHook, single_dashboard_id


class KibanaImportOperator(BaseOperator):
    """Import saved objects into Kibana; return the dashboard URL (XCom), or skip without Kibana.

    The local stack has no Kibana, so ``kibana_conn_id`` is normally undefined there: the task
    is then skipped with a log line that says how to configure it. Under Docker Compose the
    connection is defined and a failed import fails the task.
    """

    template_fields: Sequence[str] = ("ndjson_path", "kibana_conn_id")
    ui_color = "#fec514"

    def __init__(
        self,
        *,
        ndjson_path: str,
        kibana_conn_id: str = KibanaHook.default_conn_name,
        dashboard_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ndjson_path = ndjson_path
        self.kibana_conn_id = kibana_conn_id
        self.dashboard_id = dashboard_id

    def execute(self, context: Any) -> str:
        try:
            BaseHook.get_connection(self.kibana_conn_id)
        except AirflowNotFoundException:
            self.log.warning(
                "Kibana is not configured: the Airflow connection %r is not defined, so %s was not "
                "imported. To import it, %s.",
                self.kibana_conn_id,
                self.ndjson_path,
                NOT_CONFIGURED_HELP,
            )
            raise AirflowSkipException(f"Kibana is not configured (no connection {self.kibana_conn_id!r})") from None

        dashboard_id = self.dashboard_id or single_dashboard_id(self.ndjson_path)
        hook = KibanaHook(kibana_conn_id=self.kibana_conn_id)
        result = hook.import_saved_objects(self.ndjson_path, overwrite=True)
        # Kibana reports a destinationId when it had to give an object a new id (e.g. the id is
        # taken by an object in another space); the link must use that id.
        for imported in result.get("successResults") or []:
            if imported.get("type") == "dashboard" and imported.get("id") == dashboard_id:
                dashboard_id = imported.get("destinationId") or dashboard_id
        url = hook.dashboard_url(dashboard_id)
        self.log.info(
            "Kibana imported %s saved objects from %s; dashboard: %s", result.get("successCount"), self.ndjson_path, url
        )
        return url
