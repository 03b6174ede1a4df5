using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Forwarding;

/// <summary>Counters of the forwarding stage: which forwarder ran, and upstream failures by kind.</summary>
internal sealed class ForwardingMetrics
{
    private readonly Counter[] _errors;

    public ForwardingMetrics(ProxyMetrics metrics, RetryMetrics retries)
    {
        Body = metrics;
        var forwarded = metrics.Counters("zcproxy_forwarded_requests_total",
            "Proxied requests by the forwarder that handled them (zerocopy: ZcProxy's HTTP/1.1 forwarder; yarp: YARP's).", "path");
        ZeroCopy = forwarded.WithLabels("zerocopy");
        Yarp = forwarded.WithLabels("yarp");
        Retries = retries[RetryReason.StaleConnection];
        var errors = metrics.Counters("zcproxy_upstream_errors_total", "Upstream exchanges of the zero-copy forwarder that failed, by kind.", "kind");
        _errors = Enum.GetValues<UpstreamErrorKind>().Select(kind => errors.WithLabels(Label(kind))).ToArray();
        var upgraded = metrics.Counters("zcproxy_upgraded_connections_total",
            "Upgraded connections (101 Switching Protocols: WebSocket...) spliced both ways, by how they ended: done, client_error, upstream_error, idle_timeout, stopped.", "reason");
        _upgraded = Enum.GetValues<Transport.Relay.RelayEnd>().Select(end => upgraded.WithLabels(Transport.Relay.RelayEnds.Label(end))).ToArray();
    }

    private readonly Counter[] _upgraded;

    /// <summary>Upgraded connections that ended as <paramref name="end"/> says.</summary>
    public Counter Upgraded(Transport.Relay.RelayEnd end) => _upgraded[(int)end];

    public Counter ZeroCopy { get; }
    public Counter Yarp { get; }
    /// <summary>Idempotent requests resent on a fresh connection after a pooled one failed before any response byte (reason="stale_connection").</summary>
    public Counter Retries { get; }
    public ProxyMetrics Body { get; }

    public Counter Error(UpstreamErrorKind kind) => _errors[(int)kind];

    private static string Label(UpstreamErrorKind kind) => kind switch
    {
        UpstreamErrorKind.Connect => "connect",
        UpstreamErrorKind.Send => "send",
        UpstreamErrorKind.HeadTimeout => "head_timeout",
        UpstreamErrorKind.MalformedHead => "malformed_head",
        UpstreamErrorKind.ClosedBeforeHead => "closed_before_head",
        UpstreamErrorKind.BodyReset => "body_reset",
        UpstreamErrorKind.BodyTimeout => "body_timeout",
        UpstreamErrorKind.MalformedBody => "malformed_body",
        UpstreamErrorKind.ClientAborted => "client_aborted",
        UpstreamErrorKind.Transport => "transport",
        _ => kind.ToString().ToLowerInvariant(),
    };
}

internal enum UpstreamErrorKind { Connect, Send, HeadTimeout, MalformedHead, ClosedBeforeHead, BodyReset, BodyTimeout, MalformedBody, ClientAborted, Transport }
