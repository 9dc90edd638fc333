"""Entry points: one blueprint per way in. Loading them turns telemetry on (a no-op locally)."""

from shared.telemetry import configure

configure()
