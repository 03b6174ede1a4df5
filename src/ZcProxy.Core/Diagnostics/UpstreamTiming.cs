using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The upstream exchange of one request, timed for the metrics and the access log (a request feature set by
/// <see cref="UpstreamTimingStep"/>). Both forwarders report into it: ZcProxy's own around its pool's connect and
/// response-head read, YARP's through <see cref="UpstreamTimingHandler"/> on its HttpClient. A zero-copy connection
/// keeps one and <see cref="Restart"/>s it for each of its requests (<see cref="Transport.ZeroCopyResponse.Timing"/>).
/// </summary>
internal sealed class UpstreamTiming(RouteSeries series, long start)
{
    private RouteSeries _series = series;
    private long _start = start;

    /// <summary>Carries this object on YARP's outgoing HttpRequestMessage (see <see cref="UpstreamTimingHandler"/>).</summary>
    public static readonly HttpRequestOptionsKey<UpstreamTiming> OptionKey = new("zcproxy.upstream_timing");

    private long _headAt;

    /// <summary>The same object, timing the next request's upstream exchange from <paramref name="start"/>.</summary>
    public UpstreamTiming Restart(RouteSeries series, long start)
    {
        _series = series;
        _start = start;
        _headAt = 0;
        ConnectSeconds = null;
        ResponseSeconds = null;
        Address = null;
        return this;
    }

    /// <summary>Seconds the last new upstream connection took to open; null when every try reused one.</summary>
    public double? ConnectSeconds { get; private set; }

    /// <summary>Seconds from the first try to the response head; null when none arrived.</summary>
    public double? HeaderSeconds => _headAt == 0 ? null : LoopClock.Between(_start, _headAt).TotalSeconds;

    /// <summary>Seconds from the first try to the end of the upstream exchange; null while it runs.</summary>
    public double? ResponseSeconds { get; private set; }

    /// <summary>The upstream address of the last try, as the access log's $upstream_addr shows it.</summary>
    public string? Address { get; set; }

    public void Connected(TimeSpan took)
    {
        ConnectSeconds = took.TotalSeconds;
        _series.UpstreamConnect.Observe(took.TotalSeconds);
    }

    public void HeadReceived() => _headAt = LoopClock.Timestamp();

    public void Completed()
    {
        ResponseSeconds = LoopClock.Elapsed(_start).TotalSeconds;
        _series.UpstreamResponse.Observe(ResponseSeconds.Value);
        if (HeaderSeconds is { } header) _series.UpstreamHeader.Observe(header);
    }
}
