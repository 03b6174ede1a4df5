using ZcProxy.Core.Transport.Loops;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Around the upstream tries (retries included), within <see cref="Balancing.RetryStep"/>'s frame rather than a frame
/// of its own: times the upstream exchange for the metrics and the access log (<see cref="UpstreamTiming"/>), and
/// turns a forwarding failure that produced no response yet into a short, readable error body.
/// </summary>
internal sealed class UpstreamTimingStep(RequestMetrics metrics, ErrorPages pages)
{
    /// <summary>Before the first try.</summary>
    public UpstreamTiming Start(HttpContext context)
    {
        var proxy = context.ReverseProxyFeature();
        var series = metrics.For(proxy.Route.Config.RouteId, proxy.Cluster?.Config.ClusterId ?? "");
        long start = LoopClock.Timestamp();
        // A zero-copy connection keeps one for all its requests (HTTP/1.x runs them one at a time).
        var perConnection = context.Find<ZeroCopyResponse>();
        var timing = perConnection?.Timing?.Restart(series, start) ?? new UpstreamTiming(series, start);
        if (perConnection is not null) perConnection.Timing = timing;
        context.Put(timing);
        return timing;
    }

    /// <summary>After the last try: completes the timing; a completed task unless an error body is to be written.</summary>
    public Task FinishAsync(HttpContext context, UpstreamTiming timing)
    {
        var proxy = context.ReverseProxyFeature();
        timing.Address = proxy.ProxiedDestination?.Model.Config.Address;
        timing.Completed();

        var error = context.Find<IForwarderErrorFeature>();
        if (error is null || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested) return Task.CompletedTask;
        // Keep a status the forwarder chose (413 for an oversized body, 504 for a timeout...); otherwise 502.
        var status = context.Response.StatusCode >= 400 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
        var upstream = proxy.ProxiedDestination?.Model.Config.Address ?? "no destination";
        return pages.WriteAsync(context, status, status == StatusCodes.Status413PayloadTooLarge
            ? "the request body exceeds the configured limit"
            : $"upstream {upstream}: {Describe(error.Error)}");
    }

    private static string Describe(ForwarderError error) => error switch
    {
        ForwarderError.Request => "could not connect or send the request",
        ForwarderError.RequestTimedOut => "timed out",
        ForwarderError.NoAvailableDestinations => "no healthy destination",
        ForwarderError.ResponseHeaders => "sent an invalid response",
        ForwarderError.RequestBodyClient => "the client's request body could not be read",
        _ => $"failed ({error})",
    };
}

internal static class ReasonPhrases
{
    public static string GetReasonPhrase(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
}
