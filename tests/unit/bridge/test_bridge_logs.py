"""The log follower: streams cut anywhere (between lines, mid-line, among lines sharing one
timestamp) still give every line exactly once, in order."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import ForbiddenError, NotFoundError
from bridge.logs import ContainerLog, Dedupe, parse_timestamp, since_time, split_line


def test_parse_timestamp_variants() -> None:
    base = parse_timestamp("2024-05-01T10:00:00Z")
    assert base is not None
    assert parse_timestamp("2024-05-01T10:00:00.5Z") == base + 500_000_000
    assert parse_timestamp("2024-05-01T10:00:00.000000001Z") == base + 1
    assert parse_timestamp("2024-05-01T12:00:00+02:00") == base
    assert parse_timestamp("not a time") is None
    assert since_time(base + 999_999_999) == "2024-05-01T10:00:00.999999999Z"
    assert parse_timestamp(since_time(base + 7)) == base + 7


def test_split_line_keeps_text_verbatim() -> None:
    nanos, text = split_line("2024-05-01T10:00:00.1Z  two spaces ")
    assert nanos is not None
    assert text == " two spaces "
    assert split_line("2024-05-01T10:00:00Z") == (parse_timestamp("2024-05-01T10:00:00Z"), "")


def test_dedupe_counts_lines_sharing_a_timestamp() -> None:
    d = Dedupe()
    assert [d.is_new(t) for t in (1, 1, 2)] == [True, True, True]
    d.new_stream()
    assert [d.is_new(t) for t in (1, 1, 2, 2, 3)] == [False, False, False, True, True]


class FakeLogSource:
    """A container log served with an inclusive ``sinceTime`` (optionally truncated to the
    second, as a real API server does), each stream cut after the next planned number of bytes
    (only follow streams unless ``cut_final``)."""

    def __init__(
        self,
        lines: list[tuple[int, str]],
        cuts: list[int],
        *,
        truncate_since: bool = False,
        cut_final: bool = False,
        final_newline: bool = True,
    ) -> None:
        self.lines = lines
        self.cuts = list(cuts)
        self.truncate_since = truncate_since
        self.cut_final = cut_final
        self.final_newline = final_newline
        self.calls: list[tuple[str | None, bool]] = []

    def stream_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_time: str | None = None,
        timestamps: bool = True,
        follow: bool = True,
        keep_ends: bool = False,
    ) -> Iterator[str]:
        self.calls.append((since_time, follow))
        since = parse_timestamp(since_time) if since_time else None
        if since is not None and self.truncate_since:
            since -= since % 1_000_000_000
        text = "".join(
            f"{_stamp(ts)} {line}\n" for ts, line in self.lines if since is None or ts >= since
        )
        if not self.final_newline:
            text = text.removesuffix("\n")
        if (follow or self.cut_final) and self.cuts:
            text = text[: self.cuts.pop(0)]
        start = 0
        while start < len(text):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end + 1
            yield text[start:end]
            start = end


def _stamp(nanos: int) -> str:
    return since_time(nanos)


def _follow(source: FakeLogSource, *, follows: int) -> list[str]:
    out: list[str] = []
    state = {"reads": 0}

    def terminated() -> bool:
        state["reads"] += 1
        return state["reads"] > follows

    follower = ContainerLog(
        source,
        namespace="ns",
        pod="p",
        container="c",
        emit=out.append,
        terminated=terminated,
        reconnect_delay=0,
    )
    follower.run()
    return out


BASE = 1_700_000_000 * 1_000_000_000


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(
        st.sampled_from([0, 0, 1, 1000, 400_000_000, 1_000_000_000]), min_size=1, max_size=60
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    truncate_since=st.booleans(),
    final_newline=st.booleans(),
)
def test_cut_streams_lose_and_duplicate_nothing(
    gaps: list[int], cuts: list[int], truncate_since: bool, final_newline: bool
) -> None:
    stamps = []
    now = BASE
    for gap in gaps:
        now += gap
        stamps.append(now)
    lines = [(ts, f"line {i}") for i, ts in enumerate(stamps)]
    source = FakeLogSource(lines, cuts, truncate_since=truncate_since, final_newline=final_newline)
    out = _follow(source, follows=len(cuts))
    assert out == [text for _, text in lines]


def test_cut_final_reads_still_complete() -> None:
    lines = [(BASE + i * 1000, f"line {i}") for i in range(200)]
    source = FakeLogSource(lines, [500] * 30, cut_final=True, final_newline=False)
    assert _follow(source, follows=0) == [text for _, text in lines]


def test_final_read_only_for_a_finished_container() -> None:
    source = FakeLogSource([(BASE, "a"), (BASE + 1, "tail")], cuts=[], final_newline=False)
    assert _follow(source, follows=0) == ["a", "tail"]
    assert [follow for _, follow in source.calls] == [False, False]


class FakeForbiddenLogSource:
    """pods/log not granted: every stream is refused with 403 (after the adapter's one retry)."""

    def __init__(self) -> None:
        self.calls = 0

    def stream_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_time: str | None = None,
        timestamps: bool = True,
        follow: bool = True,
        keep_ends: bool = False,
    ) -> Iterator[str]:
        self.calls += 1
        raise ForbiddenError(f"get pods/log {namespace}/{pod}: 403 Forbidden", status=403)


def test_forbidden_log_is_not_retried_in_a_storm() -> None:
    # A permission problem does not fix itself: one refusal ends following (and the final read)
    # instead of a reconnect every reconnect_delay for as long as the pod runs.
    source = FakeForbiddenLogSource()
    printed: list[str] = []
    follower = ContainerLog(
        source,
        namespace="team-a",
        pod="p",
        container="main",
        emit=printed.append,
        terminated=lambda: source.calls >= 5,
        reconnect_delay=0.001,
    )
    follower.run()
    assert source.calls == 1
    assert printed == []


class FlakyNotFoundLogSource(FakeLogSource):
    """A node that answers 404 to the first log requests of a container it has only just
    started (seen on the real control plane), then serves the log."""

    def __init__(self, lines: list[tuple[int, str]], *, not_found: int) -> None:
        super().__init__(lines, cuts=[])
        self.not_found = not_found

    def stream_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str,
        since_time: str | None = None,
        timestamps: bool = True,
        follow: bool = True,
        keep_ends: bool = False,
    ) -> Iterator[str]:
        if self.not_found > 0:
            self.not_found -= 1
            self.calls.append((since_time, follow))
            raise NotFoundError(f"get pods/log {namespace}/{pod}: 404 Not Found", status=404)
        return super().stream_log(
            namespace, pod, container=container, since_time=since_time, follow=follow
        )


def test_a_404_while_the_pod_exists_is_retried_not_taken_for_gone() -> None:
    # Before: the first 404 ended the follower without its final read, and the bridge printed
    # none of the job's lines yet reported success.
    lines = [(BASE + i, f"line {i}") for i in range(5)]
    source = FlakyNotFoundLogSource(lines, not_found=2)
    assert _follow(source, follows=1) == [text for _, text in lines]
    source = FlakyNotFoundLogSource(lines, not_found=2)  # 404s in the final read too
    assert _follow(source, follows=0) == [text for _, text in lines]


def test_a_404_once_the_pod_is_gone_ends_following() -> None:
    source = FlakyNotFoundLogSource([(BASE, "never")], not_found=99)
    printed: list[str] = []
    follower = ContainerLog(
        source,
        namespace="ns",
        pod="p",
        container="c",
        emit=printed.append,
        terminated=lambda: False,
        gone=lambda: True,
        reconnect_delay=0,
    )
    follower.run()
    assert printed == []
    assert len(source.calls) == 1
