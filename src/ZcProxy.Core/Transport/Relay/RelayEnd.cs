namespace ZcProxy.Core.Transport.Relay;

/// <summary>How a <see cref="SpliceRelay"/> ended; the first reason recorded wins.</summary>
internal enum RelayEnd
{
    /// <summary>Both sides finished sending (FIN each way), every byte delivered.</summary>
    Completed,
    /// <summary>The client reset the connection or a socket call on it failed.</summary>
    ClientFailed,
    /// <summary>The upstream reset the connection or a socket call on it failed.</summary>
    UpstreamFailed,
    /// <summary>No byte moved either way for the idle timeout.</summary>
    IdleTimeout,
    /// <summary>The proxy stopped it (shutdown).</summary>
    Stopped,
}

internal static class RelayEnds
{
    /// <summary>The label operators see in logs and metrics.</summary>
    public static string Label(RelayEnd end) => end switch
    {
        RelayEnd.Completed => "done",
        RelayEnd.ClientFailed => "client_error",
        RelayEnd.UpstreamFailed => "upstream_error",
        RelayEnd.IdleTimeout => "idle_timeout",
        _ => "stopped",
    };
}
