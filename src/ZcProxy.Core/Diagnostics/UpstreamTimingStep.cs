using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The last proxy-pipeline step before the forwarders: times the upstream exchange for the access log, and
/// turns a forwarding failure that produced no response yet into a short, readable error body.
/// </summary>
public static class UpstreamTimingStep
{
    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        long start = Stopwatch.GetTimestamp();
        await next();
        context.Items[AccessLogMiddleware.UpstreamTimeItem] = Stopwatch.GetElapsedTime(start).TotalSeconds;

        var error = context.Features.Get<IForwarderErrorFeature>();
        if (error is null || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested) return;
        var status = context.Response.StatusCode is >= 500 and < 600 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        var upstream = context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address ?? "no destination";
        var body = Encoding.UTF8.GetBytes($"{status} {ReasonPhrases.GetReasonPhrase(status)}: upstream {upstream}: {Describe(error.Error)}\n");
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body);
    }

    private static string Describe(ForwarderError error) => error switch
    {
        ForwarderError.Request => "could not connect or send the request",
        ForwarderError.RequestTimedOut => "timed out",
        ForwarderError.NoAvailableDestinations => "no healthy destination",
        ForwarderError.ResponseHeaders => "sent an invalid response",
        _ => $"failed ({error})",
    };
}

internal static class ReasonPhrases
{
    public static string GetReasonPhrase(int status) => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status);
}
