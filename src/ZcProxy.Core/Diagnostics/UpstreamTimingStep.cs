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
internal static class UpstreamTimingStep
{
    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        long start = Stopwatch.GetTimestamp();
        await next();
        context.Items[AccessLogMiddleware.UpstreamTimeItem] = Stopwatch.GetElapsedTime(start).TotalSeconds;

        var error = context.Features.Get<IForwarderErrorFeature>();
        if (error is null || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested) return;
        // Keep a status the forwarder chose (413 for an oversized body, 504 for a timeout...); otherwise 502.
        var status = context.Response.StatusCode >= 400 ? context.Response.StatusCode : StatusCodes.Status502BadGateway;
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        var upstream = context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination?.Model.Config.Address ?? "no destination";
        var body = Encoding.UTF8.GetBytes(status == StatusCodes.Status413PayloadTooLarge
            ? "413 Payload Too Large: the request body exceeds the configured limit\n"
            : $"{status} {ReasonPhrases.GetReasonPhrase(status)}: upstream {upstream}: {Describe(error.Error)}\n");
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body);
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
