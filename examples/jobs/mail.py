"""``SendWelcomeEmail``: a real welcome e-mail, over SMTP or into an outbox folder.

Payload::

    {"to": "ada@example.com",          # required
     "name": "Ada Lovelace",            # optional, used in the greeting
     "plan": "pro"}                     # optional, mentioned in the body

Transport, from the environment (see the top of ``lark.config.yaml``):

- ``LARK_DEMO_SMTP_HOST`` set: send through it. ``LARK_DEMO_SMTP_PORT`` (default 587)
  picks STARTTLS on 587, implicit TLS on 465, plain otherwise; ``LARK_DEMO_SMTP_USER``
  and ``LARK_DEMO_SMTP_PASSWORD`` log in (the password is never logged).
- unset: write ``<job id>-<recipient>.eml`` to ``LARK_DEMO_OUTBOX`` (default
  ``examples/outbox/``; a relative path resolves against the project folder).

The handler is a plain ``def``: smtplib blocks, so the worker runs it in a thread.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path
from typing import Any

from lark_core import Job

from ._util import (
    DEFAULT_OUTBOX,
    EXAMPLES_DIR,
    env_int,
    env_str,
    require_mapping,
    safe_slug,
    write_atomic,
)

DEFAULT_SENDER = ("Lark Demo", "welcome@lark.example")
SMTP_TIMEOUT_S = 15
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+$")


def validate_address(value: Any, key: str = "to") -> str:
    """The bare address in ``value``, or a ValueError saying what is wrong with it."""
    if value is None or value == "":
        raise ValueError(f"SendWelcomeEmail: payload needs {key!r}, the recipient's address")
    if not isinstance(value, str):
        raise ValueError(f"SendWelcomeEmail: {key!r} must be a string, got {value!r}")
    if "\n" in value or "\r" in value:
        raise ValueError(f"SendWelcomeEmail: {key!r} must be one line, got {value!r}")
    _, addr = parseaddr(value)
    if not _ADDRESS.match(addr):
        raise ValueError(f"SendWelcomeEmail: {key!r} does not look like an e-mail address: {value!r}")
    return addr


def _sender() -> tuple[str, str]:
    user = env_str("LARK_DEMO_SMTP_USER")
    if user and _ADDRESS.match(user):  # many providers insist that From matches the login
        return (DEFAULT_SENDER[0], user)
    return DEFAULT_SENDER


def build_message(payload: Any, job_id: str) -> EmailMessage:
    data = require_mapping(payload, "SendWelcomeEmail")
    to = validate_address(data.get("to"))
    # "Grace Hopper <grace@example.org>" names the recipient too
    name = data.get("name") or parseaddr(str(data["to"]))[0] or None
    if name is not None and (not isinstance(name, str) or "\n" in name or "\r" in name):
        raise ValueError(f"SendWelcomeEmail: 'name' must be a one-line string, got {name!r}")
    plan = data.get("plan", "starter")
    if not isinstance(plan, str):
        raise ValueError(f"SendWelcomeEmail: 'plan' must be a string, got {plan!r}")

    sender = _sender()
    first = (name or "").split(" ")[0] or "there"
    msg = EmailMessage()
    msg["Subject"] = f"Welcome to Lark, {first}!"
    msg["From"] = formataddr(sender)
    msg["To"] = formataddr((name or "", to))
    msg["Date"] = formatdate(localtime=True)
    # One Message-ID per job, so a retried send is recognisably the same message.
    msg["Message-ID"] = f"<welcome.{safe_slug(job_id, 64)}@{sender[1].rsplit('@', 1)[1]}>"
    msg["X-Lark-Job-Id"] = job_id
    msg.set_content(
        f"Hi {first},\n\n"
        f"Thanks for signing up. Your {plan} plan is ready to use.\n\n"
        "A few things to try first:\n"
        "  * lark-core init    scaffold a config and a jobs folder\n"
        "  * lark-core worker  start processing jobs\n"
        "  * lark-tui          watch your queues live\n\n"
        "Reply to this e-mail if anything is unclear; a human reads every answer.\n\n"
        "The Lark team\n"
    )
    msg.add_alternative(
        f"<p>Hi {_html(first)},</p>"
        f"<p>Thanks for signing up. Your <b>{_html(plan)}</b> plan is ready to use.</p>"
        "<ul><li><code>lark-core init</code>: scaffold a config and a jobs folder</li>"
        "<li><code>lark-core worker</code>: start processing jobs</li>"
        "<li><code>lark-tui</code>: watch your queues live</li></ul>"
        "<p>Reply to this e-mail if anything is unclear; a human reads every answer.</p>"
        "<p>The Lark team</p>",
        subtype="html",
    )
    return msg


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def outbox_dir() -> Path:
    configured = env_str("LARK_DEMO_OUTBOX")
    if not configured:
        return DEFAULT_OUTBOX
    path = Path(configured).expanduser()
    return path if path.is_absolute() else EXAMPLES_DIR.parent / path


class SendWelcomeEmail(Job):
    queue = "emails"
    attempts = 3
    backoff = {"type": "fixed", "delay": 500}
    timeout = 30

    def handle(self, payload: Any) -> dict[str, Any]:
        msg = build_message(payload, str(self.job_id))
        to = parseaddr(str(msg["To"]))[1]
        self.info(f"attempt {self.attempt}: welcome e-mail to {to}")
        host = env_str("LARK_DEMO_SMTP_HOST")
        result: dict[str, Any] = {
            "to": to,
            "subject": str(msg["Subject"]),
            "message_id": str(msg["Message-ID"]),
        }
        if host:
            result.update(self._send_smtp(msg, host))
        else:
            path = outbox_dir() / f"{safe_slug(str(self.job_id), 64)}-{safe_slug(to, 60)}.eml"
            write_atomic(path, msg.as_bytes())
            self.info("no LARK_DEMO_SMTP_HOST set; wrote", str(path))
            result.update({"transport": "outbox", "path": str(path)})
        return result

    def _send_smtp(self, msg: EmailMessage, host: str) -> dict[str, Any]:
        port = env_int("LARK_DEMO_SMTP_PORT", 587)
        user = env_str("LARK_DEMO_SMTP_USER")
        password = env_str("LARK_DEMO_SMTP_PASSWORD")
        if user and password is None:
            raise ValueError("LARK_DEMO_SMTP_USER is set but LARK_DEMO_SMTP_PASSWORD is not")
        context = ssl.create_default_context()
        mode = "implicit TLS" if port == 465 else "STARTTLS" if port == 587 else "plain"
        self.info(f"connecting to {host}:{port} ({mode})")
        smtp: smtplib.SMTP
        if port == 465:
            smtp = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_S, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
        with smtp:
            smtp.ehlo()
            if port == 587:
                smtp.starttls(context=context)
                smtp.ehlo()
            if user:
                self.info("logging in as", user)
                smtp.login(user, password or "")
            refused = smtp.send_message(msg)
        if refused:
            # Some recipients were refused but not all (all refused raises): report, don't retry.
            self.warn("server refused:", {k: str(v) for k, v in refused.items()})
        self.info("sent", str(msg["Message-ID"]))
        return {"transport": "smtp", "server": f"{host}:{port}", "refused": sorted(refused)}
