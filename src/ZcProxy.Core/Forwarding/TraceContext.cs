using System.Diagnostics;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The one place that writes the upstream request's W3C trace context, for both forwarders: with an Activity on the
/// request path (ZcProxy's request span, see RequestSpanMiddleware), the client's <c>traceparent</c>/<c>tracestate</c>
/// are replaced by that span's, so the upstream's spans are its children; with none, they pass unchanged. YARP's own
/// injection (SocketsHttpHandler's DiagnosticsHandler) is switched off in ConnectTimeoutHttpClientFactory: it would
/// start an HttpClient Activity per upstream request and name that (unrecorded unless System.Net.Http is collected) as
/// the upstream's parent, which would leave a hole in the trace.
/// </summary>
internal static class TraceContext
{
    /// <summary>The zero-copy forwarder's request message.</summary>
    public static void Propagate(HttpRequestMessage message)
    {
        var activity = Activity.Current;
        if (activity is null) return;
        var propagator = DistributedContextPropagator.Current;
        foreach (var field in propagator.Fields) message.Headers.Remove(field);
        propagator.Inject(activity, message, static (carrier, name, value) =>
        {
            if (carrier is HttpRequestMessage m && value is not null) m.Headers.TryAddWithoutValidation(name, value);
        });
    }
}
