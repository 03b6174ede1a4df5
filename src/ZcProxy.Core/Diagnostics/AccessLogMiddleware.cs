using ZcProxy.Core.Transport.Loops;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Where every proxied request ends: counts it (zcproxy_requests_total by status class, the request-duration
/// histogram by route and cluster) and hands it to the access log, unless the log is off or the route says
/// <c>"Metadata": { "AccessLog": "off" }</c> (nginx's <c>access_log off;</c> in a location).
/// The end is a response-completed callback, not an async frame around the rest of the pipeline: such a frame is a
/// heap box per request whenever the upstream read suspends it, while the server's callback list is kept per
/// connection and the callback's state is pooled per thread. The callback runs once the response has been sent (as
/// nginx logs), with the status the client got (500 for a request whose handler threw before its response started).
/// </summary>
internal sealed class AccessLogMiddleware(RequestDelegate next, AccessLogWriter writer, RequestMetrics metrics)
{
    /// <summary>The route Metadata key that turns the access log off for a route ("off"; "on" is the default).</summary>
    public const string RouteMetadataKey = "AccessLog";

    private static readonly Func<object, Task> Completed = static state =>
    {
        ((RequestEnd)state).Run();
        return Task.CompletedTask;
    };

    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnCompleted(Completed, RequestEnd.Rent(this, context, LoopClock.Timestamp()));
        return next(context);
    }

    private void Complete(HttpContext context, long start)
    {
        var elapsed = LoopClock.Elapsed(start);
        metrics.CountStatus(context.Response.StatusCode);
        var proxy = context.Find<IReverseProxyFeature>();
        metrics.For(proxy?.Route.Config.RouteId ?? "", proxy?.Cluster?.Config.ClusterId ?? "").Duration.Observe(elapsed.TotalSeconds);
        if (writer.Enabled && !RouteTurnsLogOff(proxy)) writer.Write(context, elapsed);
    }

    private static bool RouteTurnsLogOff(IReverseProxyFeature? proxy)
        => proxy?.Route.Config.Metadata is { } metadata && metadata.TryGetValue(RouteMetadataKey, out var value)
            && string.Equals(value, "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// A request's start, held until its response completes; reused per thread (the callback usually runs on the thread
    /// that registered it: the connection's event loop). Nothing else holds one, so it is free again once run.
    /// </summary>
    private sealed class RequestEnd
    {
        private const int KeptPerThread = 256;
        [ThreadStatic] private static Stack<RequestEnd>? t_free;

        private AccessLogMiddleware? _owner;
        private HttpContext? _context;
        private long _start;

        public static RequestEnd Rent(AccessLogMiddleware owner, HttpContext context, long start)
        {
            var end = t_free is { Count: > 0 } free ? free.Pop() : new RequestEnd();
            end._owner = owner;
            end._context = context;
            end._start = start;
            return end;
        }

        public void Run()
        {
            var (owner, context, start) = (_owner!, _context!, _start);
            _owner = null;
            _context = null;
            var free = t_free ??= new Stack<RequestEnd>();
            if (free.Count < KeptPerThread) free.Push(this);
            owner.Complete(context, start);
        }
    }
}
