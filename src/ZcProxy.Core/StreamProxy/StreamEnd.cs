using ZcProxy.Core.Transport.Relay;

namespace ZcProxy.Core.StreamProxy;

/// <summary>How a stream connection ended: the <c>reason</c> label of zcproxy_stream_closed_total and the access log's <c>end=</c>.</summary>
internal enum StreamEnd
{
    /// <summary>Both sides finished (FIN each way).</summary>
    Done,
    /// <summary>The client reset the connection (or a call on its socket failed): the upstream got a reset.</summary>
    ClientError,
    /// <summary>The upstream reset the connection (or a call on its socket failed): the client got a reset.</summary>
    UpstreamError,
    /// <summary>No byte moved either way for the stream's IdleTimeout.</summary>
    IdleTimeout,
    /// <summary>The proxy stopped it (shutdown after the drain timeout).</summary>
    Stopped,
    /// <summary>The cluster had no healthy destination: closed at once.</summary>
    NoDestination,
    /// <summary>Every destination tried refused the connect or timed out.</summary>
    ConnectFailed,
    /// <summary>Every candidate was at MaxConnections (queue full or timed out) or its circuit breaker was open.</summary>
    Rejected,
}

internal static class StreamEnds
{
    public static readonly StreamEnd[] All = Enum.GetValues<StreamEnd>();

    public static string Label(StreamEnd end) => end switch
    {
        StreamEnd.Done => "done",
        StreamEnd.ClientError => "client_error",
        StreamEnd.UpstreamError => "upstream_error",
        StreamEnd.IdleTimeout => "idle_timeout",
        StreamEnd.Stopped => "stopped",
        StreamEnd.NoDestination => "no_destination",
        StreamEnd.ConnectFailed => "connect_failed",
        _ => "rejected",
    };

    public static StreamEnd From(RelayEnd end) => end switch
    {
        RelayEnd.Completed => StreamEnd.Done,
        RelayEnd.ClientFailed => StreamEnd.ClientError,
        RelayEnd.UpstreamFailed => StreamEnd.UpstreamError,
        RelayEnd.IdleTimeout => StreamEnd.IdleTimeout,
        _ => StreamEnd.Stopped,
    };
}
