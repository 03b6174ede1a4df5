using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Forwarding;

/// <summary>Counters of the forwarding stage: which forwarder ran, and upstream failures by kind.</summary>
internal sealed class ForwardingMetrics
{
    private const string ErrorsName = "zcproxy_upstream_errors_total";
    private const string ErrorsHelp = "Upstream exchanges of the zero-copy forwarder that failed, by kind.";
    private readonly ProxyMetrics _metrics;

    public ForwardingMetrics(ProxyMetrics metrics)
    {
        _metrics = metrics;
        const string help = "Proxied requests by the forwarder that handled them (zerocopy: ZcProxy's HTTP/1.1 forwarder; yarp: YARP's).";
        ZeroCopy = metrics.Counter("zcproxy_forwarded_requests_total", help, ("path", "zerocopy"));
        Yarp = metrics.Counter("zcproxy_forwarded_requests_total", help, ("path", "yarp"));
        Retries = metrics.Counter("zcproxy_upstream_retries_total", "Idempotent requests retried on a fresh connection after a pooled one failed before any response byte.");
        foreach (var kind in Enum.GetValues<UpstreamErrorKind>()) Error(kind);
    }

    public Counter ZeroCopy { get; }
    public Counter Yarp { get; }
    public Counter Retries { get; }
    public ProxyMetrics Body => _metrics;

    public Counter Error(UpstreamErrorKind kind) => _metrics.Counter(ErrorsName, ErrorsHelp, ("kind", Label(kind)));

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
