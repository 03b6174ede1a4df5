using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Opens the request's span (<see cref="ProxyTracing"/>) around the rest of the proxy pipeline, when something listens.
/// Its parent is the client's <c>traceparent</c> (or ASP.NET Core's own request activity when that one exists); while
/// it is current, both forwarders send it upstream as the new <c>traceparent</c> (YARP's propagator; the zero-copy
/// forwarder's TraceContext), so the upstream's spans hang below ZcProxy's. With no listener the middleware only asks
/// <see cref="ActivitySource.HasListeners"/> and allocates nothing; the client's <c>traceparent</c> then reaches the
/// upstream unchanged, as nginx passes it on.
/// </summary>
internal sealed class RequestSpanMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
        => ProxyTracing.Source.HasListeners() ? TraceAsync(context) : next(context);

    private async Task TraceAsync(HttpContext context)
    {
        var request = context.Request;
        // ASP.NET Core's activity (when an AspNetCore listener made it) is the parent as Activity.Current; else the header's.
        ActivityContext parent = default;
        var kind = ActivityKind.Internal;
        if (Activity.Current is null)
        {
            kind = ActivityKind.Server;
            DistributedContextPropagator.Current.ExtractTraceIdAndState(request.Headers, static (carrier, name, out value, out values) =>
            {
                values = null;
                value = ((IHeaderDictionary)carrier!)[name].ToString() is { Length: > 0 } v ? v : null;
            }, out var traceParent, out var traceState);
            if (traceParent is not null) ActivityContext.TryParse(traceParent, traceState, isRemote: true, out parent);
        }
        using var activity = ProxyTracing.Source.StartActivity(request.Method, kind, parent);
        if (activity is null)
        {
            await next(context); // listeners present, but none samples this request
            return;
        }
        if (activity.IsAllDataRequested)
        {
            activity.SetTag("http.request.method", request.Method);
            activity.SetTag("url.path", request.Path.Value);
            activity.SetTag("server.address", request.Host.Host);
            activity.SetTag("network.protocol.version", request.Protocol);
            activity.SetTag("client.address", context.Connection.RemoteIpAddress?.ToString());
        }
        try
        {
            await next(context);
        }
        finally
        {
            var status = context.Response.StatusCode;
            var proxy = context.Features.Get<IReverseProxyFeature>();
            if (proxy is not null) activity.DisplayName = $"{request.Method} {proxy.Route.Config.RouteId}";
            if (activity.IsAllDataRequested)
            {
                activity.SetTag("http.response.status_code", status);
                activity.SetTag("http.route", proxy?.Route.Config.RouteId);
                activity.SetTag("zcproxy.cluster", proxy?.Cluster?.Config.ClusterId);
                activity.SetTag("zcproxy.destination", proxy?.ProxiedDestination?.DestinationId);
                activity.SetTag("zcproxy.upstream.address", proxy?.ProxiedDestination?.Model.Config.Address);
                if (CacheStatusFeature.Of(context) is { } cache) activity.SetTag("zcproxy.cache_status", cache);
            }
            if (status >= 500 || context.RequestAborted.IsCancellationRequested) activity.SetStatus(ActivityStatusCode.Error);
        }
    }
}
