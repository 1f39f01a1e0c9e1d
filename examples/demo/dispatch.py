"""Queue the demo's tasks (the worker runs them next)."""

from __future__ import annotations

from demo_tasks import ChargeCard, Cleanup, build_report, crunch, flaky_webhook, send_email

from asynctasq import dispatch_many, print, run


async def main() -> None:
    ids = [
        await send_email("ada@example.com", "Welcome!").dispatch(),
        await send_email(to="alan@example.com", subject="Your report").dispatch(),
        await build_report(report_id=42).dispatch(),
        await crunch(rounds=300_000).dispatch(),
        await flaky_webhook("https://hooks.example.com/orders").dispatch(),
        await ChargeCard(user_id=7, amount=19.99).dispatch(),
        await ChargeCard(user_id=8, amount=-5).dispatch(),
        await Cleanup().dispatch(),
    ]
    ids += await dispatch_many(send_email(f"user{i}@example.com", "Digest") for i in range(3))
    print(f"[bold]queued {len(ids)} tasks[/bold]; starting a worker…")


if __name__ == "__main__":
    run(main())
