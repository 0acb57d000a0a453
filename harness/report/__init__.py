"""Reports rendered from the results store only."""

from harness.report.leaderboard import (
    LeaderboardTable,
    all_tables,
    leaderboard_tables,
    rank_summary,
    render_csv,
    render_html,
    render_latex,
    render_markdown,
    summarise,
)

__all__ = [
    "LeaderboardTable",
    "all_tables",
    "leaderboard_tables",
    "rank_summary",
    "render_csv",
    "render_html",
    "render_latex",
    "render_markdown",
    "summarise",
]
