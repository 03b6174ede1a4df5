using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// YARP's client factory plus the cluster's <c>ConnectTimeout</c> (nginx proxy_connect_timeout, HAProxy timeout
/// connect): a destination that does not accept the connection in time fails fast with a "timeout" that the retry
/// and breaker steps treat like any other connect failure. The response-head/idle timeout is YARP's
/// <c>HttpRequest.ActivityTimeout</c>.
/// </summary>
internal sealed class ConnectTimeoutHttpClientFactory(ILogger<ForwarderHttpClientFactory> logger) : ForwarderHttpClientFactory(logger)
{
    protected override bool CanReuseOldClient(ForwarderHttpClientContext context)
        => base.CanReuseOldClient(context) && ConnectTimeout(context.OldMetadata) == ConnectTimeout(context.NewMetadata);

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (ConnectTimeout(context.NewMetadata) is { } timeout) handler.ConnectTimeout = timeout;
        // Header values pass through as bytes (see HeaderEncoding), unless the cluster's HttpRequest asks for an encoding.
        if (context.NewConfig.RequestHeaderEncoding is null) handler.RequestHeaderEncodingSelector = HeaderEncoding.ForUpstreamHeader;
        if (context.NewConfig.ResponseHeaderEncoding is null) handler.ResponseHeaderEncodingSelector = HeaderEncoding.ForUpstreamHeader;
        // Connect and response-head times for zcproxy_upstream_*_duration_seconds and the access log (both forwarders report them).
        handler.ConnectCallback = UpstreamTimingHandler.ConnectAsync;
        // Trace context is TraceContext's to write, as on the zero-copy path (no HttpClient Activity per upstream request).
        handler.ActivityHeadersPropagator = null;
        // An upstream that answers early and closes mid-upload has its answer read (see EarlyResponseBody).
        handler.PlaintextStreamFilter = EarlyResponseConnectionStream.FilterAsync;
    }

    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler)
        => new UpstreamTimingHandler(base.WrapHandler(context, handler));

    private static TimeSpan? ConnectTimeout(IReadOnlyDictionary<string, string>? metadata)
        => metadata is not null && metadata.TryGetValue(BalancingMetadataKeys.ConnectTimeout, out var text)
            && Duration.TryParse(text, out var t) && t > TimeSpan.Zero ? t : null;
}
