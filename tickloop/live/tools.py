"""Operator tools of a CLI session: dashboard, metrics endpoint and Telegram, built from flags.

Tokens never come from flags (a command line is visible to every user in ``ps``): the
dashboard's kill token from ``$TICKLOOP_DASHBOARD_TOKEN``, the Telegram bot token from
``$TICKLOOP_TELEGRAM_TOKEN`` (both can sit in the 0600 EnvironmentFile of the systemd unit).
The dashboard starts before the session exists, so it steers it through a :class:`ControlProxy`
that the session is bound to as soon as it is built.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError
from tickloop.live.dashboard import Dashboard, DashboardState
from tickloop.live.metrics import SessionMetrics
from tickloop.live.notify import TelegramConfig, TelegramNotifier
from tickloop.live.observer import SessionControl, SessionObserver

ENV_DASHBOARD_TOKEN = "TICKLOOP_DASHBOARD_TOKEN"
ENV_TELEGRAM_TOKEN = "TICKLOOP_TELEGRAM_TOKEN"


class ControlProxy:
    """A SessionControl that forwards to the session once :meth:`bind` gave it one."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.target: SessionControl | None = None

    def bind(self, target: SessionControl) -> None:
        self.target = target

    def request_kill(self, reason: str) -> None:
        if self.target is None:
            raise ConfigError("the session is still starting; nothing to kill yet")
        self.target.request_kill(reason)

    def status(self) -> dict[str, Any]:
        return self.target.status() if self.target is not None else {"mode": self.mode, "state": "starting"}


@dataclass
class OperatorTools:
    """The observers to hand to the session, and the dashboard server to start and stop."""

    proxy: ControlProxy
    observers: list[SessionObserver] = field(default_factory=list)
    dashboard: Dashboard | None = None
    notifier: TelegramNotifier | None = None

    async def start(self) -> None:
        if self.dashboard is not None:
            url = await self.dashboard.start()
            print(f"tickloop {self.proxy.mode}: dashboard at {url}", file=sys.stderr, flush=True)
        if self.notifier is not None:
            self.notifier.start()

    async def aclose(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.aclose()


def add_tool_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("operator tools")
    g.add_argument("--dashboard-port", type=int, default=None, metavar="P",
                   help=f"serve the dashboard and /metrics on P (0 = any); kill token from ${ENV_DASHBOARD_TOKEN}")
    g.add_argument("--dashboard-host", default="127.0.0.1", metavar="HOST", help="dashboard bind address")
    g.add_argument("--telegram-chat", default=None, metavar="ID",
                   help=f"send notifications to this chat (bot token from ${ENV_TELEGRAM_TOKEN})")
    g.add_argument("--telegram-url", default="https://api.telegram.org", metavar="URL", help="Bot API base URL")
    g.add_argument("--telegram-signals", default="", metavar="N,N", help="signal names worth a message")


def build_tools(args: argparse.Namespace, mode: str, environ: dict[str, str] | None = None) -> OperatorTools:
    env = dict(os.environ) if environ is None else environ
    tools = OperatorTools(ControlProxy(mode))
    metrics = SessionMetrics()
    tools.observers.append(metrics)
    if getattr(args, "dashboard_port", None) is not None:
        state = DashboardState()
        tools.observers.append(state)
        token = env.get(ENV_DASHBOARD_TOKEN) or None
        tools.dashboard = Dashboard(state, metrics, tools.proxy, token=token,
                                    host=args.dashboard_host, port=args.dashboard_port)
    if getattr(args, "telegram_chat", None):
        bot = env.get(ENV_TELEGRAM_TOKEN)
        if not bot:
            raise ConfigError(f"--telegram-chat needs the bot token in ${ENV_TELEGRAM_TOKEN}")
        signals = frozenset(s for s in args.telegram_signals.split(",") if s)
        tools.notifier = TelegramNotifier(TelegramConfig(bot, args.telegram_chat, base_url=args.telegram_url,
                                                         signals=signals, session=f"tickloop {mode}"))
        tools.observers.append(tools.notifier)
    return tools
