"""Reports rendered from the results store only."""

from harness.report.leaderboard import (
    LeaderboardTable,
    leaderboard_tables,
    render_csv,
    render_markdown,
    summarise,
)

__all__ = ["LeaderboardTable", "leaderboard_tables", "render_csv", "render_markdown", "summarise"]
