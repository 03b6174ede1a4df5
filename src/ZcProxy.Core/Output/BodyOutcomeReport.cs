using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using ZcProxy.Core.Forwarding;

namespace ZcProxy.Core.Output;

/// <summary>
/// The one place a failed body transfer becomes what the rest of the proxy and its operators see: the status when
/// no byte of the response was sent yet (after that the sender has aborted the client connection), YARP's
/// <see cref="ForwarderError"/> (passive health checks, retries, UpstreamTimingStep read it), the
/// zcproxy_upstream_errors_total kind, and one log line.
/// </summary>
internal sealed partial class BodyOutcomeReport(ForwardingMetrics metrics, ILogger<BodyOutcomeReport> logger)
{
    /// <summary>YARP's error and the error-counter kind of a failed upstream body.</summary>
    public static (ForwarderError Error, UpstreamErrorKind Kind) Classify(BodyOutcome outcome) => outcome switch
    {
        BodyOutcome.ClientFailed => (ForwarderError.ResponseBodyClient, UpstreamErrorKind.ClientAborted),
        BodyOutcome.TransportFailed => (ForwarderError.ResponseBodyClient, UpstreamErrorKind.Transport),
        BodyOutcome.SourceTimedOut => (ForwarderError.ResponseBodyDestination, UpstreamErrorKind.BodyTimeout),
        BodyOutcome.SourceMalformed => (ForwarderError.ResponseBodyDestination, UpstreamErrorKind.MalformedBody),
        _ => (ForwarderError.ResponseBodyDestination, UpstreamErrorKind.BodyReset), // ended early, or reset
    };

    /// <summary>A forwarded response body from <paramref name="destination"/> that did not arrive complete.</summary>
    public void UpstreamBodyFailed(HttpContext context, BodyResult result, string destination)
    {
        var (error, kind) = Classify(result.Outcome);
        metrics.Error(kind).Increment();
        LogUpstreamBodyFailed(logger, error, destination, result.Outcome, result.Reason ?? "");
        context.Features.Set<IForwarderErrorFeature>(new ZeroCopyForwarderErrorFeature(error, new IOException(result.Reason)));
        AnswerIfNotStarted(context, StatusCodes.Status502BadGateway);
    }

    /// <summary>A stored (cache) body that did not arrive complete: the entry's file shrank or failed, or the client left.</summary>
    public void StoredBodyFailed(HttpContext context, BodyResult result, string key)
    {
        if (result.Outcome == BodyOutcome.ClientFailed) LogStoredBodyClientGone(logger, key, result.Reason ?? "");
        else LogStoredBodyFailed(logger, key, result.Outcome, result.Reason ?? "");
        AnswerIfNotStarted(context, StatusCodes.Status500InternalServerError);
    }

    /// <summary>A static file's body that did not arrive complete: the file shrank or failed, or the client left.</summary>
    public void StaticBodyFailed(HttpContext context, BodyResult result, string path)
    {
        if (result.Outcome == BodyOutcome.ClientFailed) LogStaticBodyClientGone(logger, path, result.Reason ?? "");
        else LogStaticBodyFailed(logger, path, result.Outcome, result.Reason ?? "");
        AnswerIfNotStarted(context, StatusCodes.Status500InternalServerError);
    }

    /// <summary>A body that failed before its response head left still gets a clean status instead of a torn response.</summary>
    private static void AnswerIfNotStarted(HttpContext context, int status)
    {
        if (context.Response.HasStarted) return;
        context.Response.Clear();
        context.Response.StatusCode = status;
    }

    [LoggerMessage(EventId = 11002, Level = LogLevel.Error, Message = "static files: {Path} could not be sent ({Outcome}): {Reason}")]
    private static partial void LogStaticBodyFailed(ILogger logger, string path, BodyOutcome outcome, string reason);

    [LoggerMessage(EventId = 11003, Level = LogLevel.Debug, Message = "static files: the client left while {Path} was sent: {Reason}")]
    private static partial void LogStaticBodyClientGone(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "zero-copy forwarder: {Error} while relaying the body from {Destination} ({Outcome}; client aborted if the response had started): {Reason}")]
    private static partial void LogUpstreamBodyFailed(ILogger logger, ForwarderError error, string destination, BodyOutcome outcome, string reason);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Error, Message = "cache: the stored body of {Key} could not be sent ({Outcome}): {Reason}")]
    private static partial void LogStoredBodyFailed(ILogger logger, string key, BodyOutcome outcome, string reason);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Debug, Message = "cache: the client left while the stored body of {Key} was sent: {Reason}")]
    private static partial void LogStoredBodyClientGone(ILogger logger, string key, string reason);
}
