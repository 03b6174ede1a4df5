using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// The last proxy-pipeline step before YARP's forwarder. For plaintext HTTP/1.x clients and http:// destinations
/// it forwards over its own HTTP/1.1 upstream pool, so that large Content-Length bodies can be spliced from the
/// upstream socket to the client socket, and an upgraded connection (101) is spliced both ways (<see cref="UpgradeTunnel"/>);
/// everything else falls through to YARP (see <see cref="ZeroCopyEligibility"/>).
/// Request heads go through the route's YARP transforms, and failures are reported through IForwarderErrorFeature
/// with the status codes YARP uses, so transforms, passive health checks and logging see both paths alike.
/// </summary>
internal sealed partial class ZeroCopyForwarder(
    RequestDelegate next, UpstreamConnectionPool pool, RuntimeOptions options, ForwardingMetrics metrics,
    ResponseBodySender sender, BodyOutcomeReport report, DefaultTransforms defaultTransforms, UpgradeTunnel tunnel, ILogger<ZeroCopyForwarder> logger)
{
    /// <summary>
    /// One try, as <see cref="Balancing.RetryStep"/> awaits it: a ValueTask, so the pooled forward is awaited directly
    /// (as a middleware's Task it would allocate a wrapper whenever the upstream read suspends it).
    /// Not async itself (nor ForwardToAsync): one frame fewer to box each time the upstream read suspends the request.
    /// </summary>
    public ValueTask ForwardOrDeclineAsync(HttpContext context)
    {
        var zeroCopy = options.Current.ZeroCopy;
        var proxy = context.ReverseProxyFeature();
        var destinations = proxy.AvailableDestinations;
        var requestConfig = proxy.Cluster.Config.HttpRequest;
        // No destination: YARP's forwarder answers 503 and reports NoAvailableDestinations.
        if (!zeroCopy.Enabled || destinations.Count == 0 || !ZeroCopyEligibility.ClientQualifies(context))
            return new ValueTask(DeclineAsync(context));
        // Like YARP's forwarder: load balancing normally leaves one; otherwise pick at random.
        var destination = destinations.Count == 1 ? destinations[0] : destinations[Random.Shared.Next(destinations.Count)];
        if (!ZeroCopyEligibility.DestinationQualifies(destination.Model.Config, requestConfig, out var target))
            return new ValueTask(DeclineAsync(context));

        proxy.ProxiedDestination = destination;
        metrics.ZeroCopy.Increment();
        // Requests in flight per destination are counted by the pool steps around every try (DestinationRuntime), for
        // both forwarders alike; YARP's DestinationState.ConcurrentRequestCount is YARP's own and not written here.
        return ForwardAsync(context, proxy.Route.Transformer, defaultTransforms.AreDefault(proxy.Route, proxy.Cluster), destination.Model.Config.Address, target!,
            UpstreamTimeouts.For(zeroCopy, requestConfig, proxy.Cluster.Config.Metadata));
    }

    /// <summary>
    /// Forwards to one given http:// base address with the given transformer, outside the route's pool (a cache
    /// peer): no balancing, no retries but the stale-connection one. What does not qualify goes to this instance's next.
    /// </summary>
    public Task ForwardToAsync(HttpContext context, DestinationConfig destination, HttpTransformer transformer, TimeSpan connectTimeout)
    {
        var zeroCopy = options.Current.ZeroCopy;
        if (!zeroCopy.Enabled || !ZeroCopyEligibility.ClientQualifies(context) || !ZeroCopyEligibility.DestinationQualifies(destination, null, out var target))
            return DeclineAsync(context);
        metrics.ZeroCopy.Increment();
        return ForwardAsync(context, transformer, defaultTransforms: false, destination.Address, target!,
            UpstreamTimeouts.For(zeroCopy, null) with { Connect = connectTimeout }).AsTask();
    }

    private async Task DeclineAsync(HttpContext context)
    {
        metrics.Yarp.Increment();
        // YARP's forwarder copies bodies through user space; count them so the metrics cover both paths, and bound its
        // reads by the client body timeout as ours are. Retries run this step again with the same context: wrap once.
        if (context.Response.Body is not CountingBodyStream)
            context.Response.Body = new CountingBodyStream(context.Response.Body, metrics.Body, BodyDirection.Response);
        if (context.Request.Body is not ClientBodyTimeoutStream)
            context.Request.Body = new ClientBodyTimeoutStream(new CountingBodyStream(context.Request.Body, metrics.Body, BodyDirection.Request, context),
                options.Current.ZeroCopy.ClientBodyTimeout);
        if (RequestFraming(context) == RequestBodyFraming.None)
        {
            await next(context);
            // A 101: YARP tunnelled an upgraded connection (a WebSocket) and the tunnel has ended. On Kestrel's socket
            // transport (TLS listeners, ZeroCopy.Enabled: false) the client may still be sending, and a byte arriving after
            // the close made the kernel reset the connection under the close frame it had not read yet (WebSocketCloseTests):
            // the close lingers (SocketLingeringClose). Zero-copy connections are not found as ILingerOnClose: their own
            // tunnels end both directions themselves. Here, not as a pipeline step: only requests YARP forwards can be it.
            if (context.Response.StatusCode == StatusCodes.Status101SwitchingProtocols) context.Find<ILingerOnClose>()?.LingerOnClose();
        }
        else
        {
            // This try's body, so that an upstream's early answer mid-upload is read (EarlyResponseBody); the request's
            // own stream again afterwards (a retry rewinds it and forwards again).
            var body = context.Request.Body;
            var watched = new EarlyResponseBody(body, context);
            context.Request.Body = watched;
            EarlyResponseBody.Current = watched; // this method's flow only: YARP's HttpClient writes the request on it
            try { await next(context); }
            finally { context.Request.Body = body; }
            if (watched.UpstreamStopped && context.Find<IForwarderErrorFeature>() is null)
                LogYarpEarlyResponse(logger, context.Response.StatusCode);
        }
        ClientBodyTimeout.AnswerIfTimedOut(context);
    }

    // Pooled: the upstream read suspends it on every request, and its box is the largest of the request's (~400 B).
    [AsyncMethodBuilder(typeof(FramePoolBuilder))]
    private async ValueTask ForwardAsync(HttpContext context, HttpTransformer transformer, bool defaultTransforms, string destinationPrefix,
        DestinationTarget destination, UpstreamTimeouts timeouts)
    {
        var aborted = context.RequestAborted;
        var request = context.Request;
        // An upgrade (WebSocket...) carries no body; after a 101 its connection becomes a tunnel (UpgradeTunnel).
        var upgrade = ZeroCopyEligibility.TunnelableUpgrade(context);
        var framing = upgrade is null ? RequestFraming(context) : RequestBodyFraming.None;
        bool isHead = HttpMethods.IsHead(request.Method);

        // :: Request head: straight from Kestrel's request when the route's transforms are the defaults, else built by the
        // route's transforms exactly as for YARP's forwarder.
        // On a zero-copy connection the head buffer object is the connection's (its array is rented per request).
        var zeroCopy = context.Find<ZeroCopyResponse>();
        var requestHead = zeroCopy?.RequestHead() ?? new HeadBuffer();
        // The default head's array is pooled and given back once the head is sent (a retry writes it again), not held
        // while the upstream answers: rented and returned in one run of the loop thread, it is the pool's per-thread
        // array each time; held across the wait, the loop's other requests missed it and took the pool's locked
        // per-core stacks (ArrayPool rent/return ~1 % of the loop samples at -c64).
        bool defaultHead = false;
        try
        {
            if (upgrade is null && defaultTransforms && DefaultRequestHead.TryWrite(context, destination, ref framing, requestHead)) defaultHead = true;
            else
            {
                requestHead.Release();
                (var transformed, framing) = await TransformRequestHeadAsync(context, transformer, destinationPrefix, framing, upgrade);
                if (transformed is null) return; // a transform answered
                requestHead = new HeadBuffer(transformed);
            }
        }
        catch (Exception e) when (!aborted.IsCancellationRequested)
        {
            requestHead.Release();
            Fail(context, ForwarderError.RequestCreation, StatusCodes.Status502BadGateway, e, null);
            return;
        }
        context.Find<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            var key = destination.PoolKey;
            // Upstream sockets live on the client connection's event loop (and come from that loop's pool): the request
            // and its upstream I/O stay on one thread. Clients of Kestrel's socket transport use .NET's socket engine.
            var loop = (zeroCopy?.Connection ?? context.Find<ZeroCopyConnection>())?.Loop;
            bool canRetry = framing == RequestBodyFraming.None && IsIdempotent(request.Method);
            UpstreamConnection? connection = null;
            ResponseHead head;
            for (int attempt = 0; ; attempt++)
            {
                // :: Connection: a pooled keep-alive one, or (always on the retry) a fresh one.
                connection = attempt == 0 ? pool.TryRentIdle(key, loop) : null;
                if (connection is null)
                {
                    long connectStart = Stopwatch.GetTimestamp();
                    try { connection = await pool.ConnectAsync(key, destination.Uri.DnsSafeHost, destination.Uri.Port, timeouts.Connect, aborted, loop); }
                    catch (Exception e)
                    {
                        if (aborted.IsCancellationRequested) { Fail(context, ForwarderError.RequestCanceled, StatusCodes.Status400BadRequest, e, null); return; }
                        Fail(context, ForwarderError.Request, StatusCodes.Status502BadGateway, e, UpstreamErrorKind.Connect, requestSent: false);
                        return;
                    }
                    context.Find<UpstreamTiming>()?.Connected(Stopwatch.GetElapsedTime(connectStart));
                }
                connection.RequestCount++;
                long sentBefore = connection.BytesSent;

                // :: Send the head and body, then read the response head (interim 1xx heads skipped).
                // A spliced body whose first bytes came with the request head: they follow the head at once, in one segment.
                bool bodyFollows = framing == RequestBodyFraming.ContentLength
                    && RequestBodySplice.FirstBytesHeld(context, connection, options.Current.ZeroCopy.SpliceThreshold);
                var failure = await SendHeadAsync(connection, requestHead.Written, bodyFollows, aborted);
                if (defaultHead) requestHead.Release();
                if (failure is null && framing != RequestBodyFraming.None) failure = await ExchangeBodyAsync(context, connection, framing, isHead, timeouts);
                else if (failure is null)
                {
                    // Nothing races the head read of a bodiless request (most requests): awaited here, not in a frame of its own
                    // (each frame the upstream read suspends is a heap box). One timeout per connection, ended in the finally.
                    var headToken = connection.BeginHeadTimeout(aborted);
                    try
                    {
                        var headRead = ReadHeadAsync(context, connection, isHead, headToken);
                        connection.ArmHeadTimeout(timeouts.ResponseHead);
                        connection.LastHead = await headRead;
                    }
                    catch (Exception e) { failure = HeadFailure(e, timeouts, aborted.IsCancellationRequested); }
                    finally { connection.EndHeadTimeout(); }
                }
                if (failure is null)
                {
                    context.Find<UpstreamTiming>()?.HeadReceived();
                    head = connection.LastHead!;
                    break;
                }
                connection.Dispose();
                var (error, status, kind, exception, beforeAnyByte) = failure.Value;
                // The same request again, so the same bytes (the transform path's head is not pooled: it is kept as it is).
                if (beforeAnyByte && connection.IsReused && canRetry && attempt == 0 && !aborted.IsCancellationRequested
                    && (!defaultHead || DefaultRequestHead.TryWrite(context, destination, ref framing, requestHead.Restart())))
                {
                    // A kept-alive connection the upstream closed just as we reused it: safe to resend an idempotent, bodiless request once.
                    metrics.Retries.Increment();
                    LogRetry(logger, key, exception.Message);
                    continue;
                }
                // The head goes first: when none of it was accepted, nothing of the request (body included) left the proxy.
                Fail(context, error, status, exception, kind, requestSent: connection.BytesSent != sentBefore);
                return;
            }

            // :: An early response (before the request body was all sent): the upstream connection is mid-request and the
            // client's unread body is still on its connection, so neither carries another request (nginx does the same).
            bool requestIncomplete = connection.RequestIncomplete;

            // :: Status and headers, through the route's response transforms.
            if (head.StatusCode == StatusCodes.Status101SwitchingProtocols && upgrade is not null)
            {
                await TunnelAsync(context, connection, head, defaultTransforms ? null : transformer, timeouts);
                return;
            }
            if (head.StatusCode == StatusCodes.Status101SwitchingProtocols)
            {
                connection.Dispose();
                Fail(context, ForwarderError.ResponseHeaders, StatusCodes.Status502BadGateway, new InvalidDataException("101 Switching Protocols to a request that asked for no upgrade"), UpstreamErrorKind.MalformedHead);
                return;
            }
            bool copyBody;
            try
            {
                copyBody = await CopyStatusAndHeadersAsync(context, head, defaultTransforms ? null : transformer);
                if (requestIncomplete) context.Response.Headers.Connection = "close";
            }
            catch (Exception e)
            {
                connection.Dispose();
                context.Response.Clear();
                Fail(context, ForwarderError.ResponseHeaders, StatusCodes.Status502BadGateway, e, null);
                return;
            }
            if (!copyBody)
            {
                if (head.Framing == BodyFraming.None && head.KeepAlive && !requestIncomplete && !connection.OverRead) pool.Return(connection); else connection.Dispose();
                return;
            }

            // :: Body.
            BodyResult result;
            bool reusable;
            await using (var body = UpstreamBody.Open(connection, head, timeouts.BodyIdle, context.RequestAborted))
            {
                result = await sender.SendAsync(context, body);
                reusable = result.IsComplete && body.EndedCleanly && head.KeepAlive && !requestIncomplete;
            }
            if (reusable) pool.Return(connection); else connection.Dispose();
            if (!result.IsComplete) report.UpstreamBodyFailed(context, result, key);
        }
        finally
        {
            requestHead.Release();
        }
    }

    /// <summary>The request head as the route's transforms make it (null: a transform answered the request itself).</summary>
    /// <param name="upgrade">The protocol an upgrade asks for: sent with Connection: Upgrade (the transforms drop both, as hop-by-hop fields).</param>
    internal static async Task<(byte[]? Head, RequestBodyFraming Framing)> TransformRequestHeadAsync(HttpContext context, HttpTransformer transformer,
        string destinationPrefix, RequestBodyFraming framing, string? upgrade = null)
    {
        var request = context.Request;
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), (Uri?)null) { Version = HttpVersion.Version11 };
        if (framing != RequestBodyFraming.None) message.Content = new HeaderOnlyContent();
        await transformer.TransformRequestAsync(context, message, destinationPrefix, context.RequestAborted);
        if (context.Response.StatusCode != StatusCodes.Status200OK || context.Response.HasStarted) return (null, framing);
        message.RequestUri ??= RequestUtilities.MakeDestinationAddress(destinationPrefix, request.Path, request.QueryString);
        TraceContext.Propagate(message);
        if (framing == RequestBodyFraming.ContentLength && message.Content?.Headers.NonValidated.Contains("Content-Length") != true)
            framing = RequestBodyFraming.Chunked;
        if (upgrade is not null) message.Headers.TryAddWithoutValidation("Upgrade", upgrade); // as YARP's forwarder does
        return (RequestHeadWriter.Write(message, framing, upgrade is null ? null : "Upgrade"), framing);
    }

    /// <summary>The upstream switched protocols: the 101 (through the response transforms, with its Upgrade field) to the client, then the tunnel.</summary>
    private async Task TunnelAsync(HttpContext context, UpstreamConnection connection, ResponseHead head, HttpTransformer? transformer, UpstreamTimeouts timeouts)
    {
        try { await CopyStatusAndHeadersAsync(context, head, transformer); }
        catch (Exception e)
        {
            connection.Dispose();
            context.Response.Clear();
            Fail(context, ForwarderError.ResponseHeaders, StatusCodes.Status502BadGateway, e, null);
            return;
        }
        // Kestrel's UpgradeAsync writes Connection: Upgrade; the protocol switched to comes from the upstream's head.
        foreach (var (name, value) in head.Headers)
            if (name.Equals("Upgrade", StringComparison.OrdinalIgnoreCase)) context.Response.Headers.Upgrade = value;
        var client = context.Find<ZeroCopyConnection>()!;
        if (!await tunnel.RunAsync(context, client, connection, timeouts.BodyIdle, options.Current.ZeroCopy.RelaySendLowWatermark) && !context.Response.HasStarted)
        {
            context.Response.Clear();
            Fail(context, ForwarderError.UpgradeResponseClient, StatusCodes.Status502BadGateway, new IOException("the client connection could not be upgraded"), null);
        }
    }

    private readonly record struct ExchangeFailure(ForwarderError Error, int Status, UpstreamErrorKind? Kind, Exception Exception, bool BeforeAnyResponseByte);

    /// <summary>Sends the request head: a failure here left nothing of the request (body included) with the upstream.</summary>
    private static async ValueTask<ExchangeFailure?> SendHeadAsync(UpstreamConnection connection, ReadOnlyMemory<byte> requestHead, bool bodyFollows, CancellationToken aborted)
    {
        connection.RequestIncomplete = false;
        try
        {
            await connection.SendAsync(requestHead, aborted, more: bodyFollows);
            return null;
        }
        catch (Exception e) when (!aborted.IsCancellationRequested)
        {
            return new(ForwarderError.Request, StatusCodes.Status502BadGateway, UpstreamErrorKind.Send, e, true);
        }
        catch (Exception e)
        {
            return new(ForwarderError.RequestCanceled, StatusCodes.Status400BadRequest, null, e, false);
        }
    }

    /// <summary>
    /// The response head read, started (its timeout is the caller's to arm). One greedy recv for a head and a small body;
    /// body bytes that come with the head go to the client first. Interim responses (103 Early Hints...) go on to an
    /// HTTP/1.1 client as they arrive.
    /// </summary>
    private static ValueTask<ResponseHead> ReadHeadAsync(HttpContext context, UpstreamConnection connection, bool isHead, CancellationToken headToken)
    {
        var interimRecipient = InterimResponses.Recipient(context);
        return connection.ReadResponseHeadAsync(isHead, ResponseHeadLimits.Default, headToken,
            interimRecipient is null ? null : InterimResponses.ForwardAsync, interimRecipient);
    }

    /// <summary>
    /// After the request head: sends the body while already reading the response head, as an upstream may answer before
    /// it has read the whole body (413, 401...) and close. Then sending stops, that response is forwarded, and
    /// <see cref="UpstreamConnection.RequestIncomplete"/> tells the caller that neither connection can be reused.
    /// </summary>
    /// <remarks>Pooled (no box per request): the upstream read suspends it on every request with a body.</remarks>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))]
    private async ValueTask<ExchangeFailure?> ExchangeBodyAsync(HttpContext context, UpstreamConnection connection,
        RequestBodyFraming framing, bool isHead, UpstreamTimeouts timeouts)
    {
        var aborted = context.RequestAborted;
        // One timeout source per connection, reused (not a linked source and a timer per request); ended in the finally.
        var headToken = connection.BeginHeadTimeout(aborted);
        try
        {
            // The response head is read from now on; its timeout starts once the request is sent (or sending failed).
            // Raced with the body: a Task (a pooled ValueTask may be awaited only once).
            var headTask = ReadHeadAsync(context, connection, isHead, headToken).AsTask();
            using var stopBody = CancellationTokenSource.CreateLinkedTokenSource(aborted);
            var zeroCopy = options.Current.ZeroCopy;
            var splicing = new RequestBodySplicing(zeroCopy.SpliceThreshold, zeroCopy.ClientBodyTimeout, timeouts.BodyIdle);
            var bodyTask = RequestBodySender.SendAsync(context, connection, framing, metrics.Body, splicing, stopBody.Token);
            if (await Task.WhenAny(bodyTask, headTask) == headTask && headTask.IsCompletedSuccessfully)
            {
                // An early response: stop sending (the upstream is not reading any more) and forward it.
                stopBody.Cancel();
                try { await bodyTask; connection.RequestIncomplete = false; }
                catch { connection.RequestIncomplete = true; }
                if (connection.RequestIncomplete) LogEarlyResponse(logger, connection.DestinationKey, headTask.Result.StatusCode);
                connection.LastHead = headTask.Result;
                return null;
            }
            ExchangeFailure? sendFailure = null;
            try { await bodyTask; }
            catch (ClientBodyException e)
            {
                // The client stalled (408, nginx's client_body_timeout) or failed: its fault, not the destination's.
                connection.RequestIncomplete = true;
                sendFailure = new(ForwarderError.RequestBodyClient, e.TimedOut ? StatusCodes.Status408RequestTimeout : StatusCodes.Status400BadRequest, null, e, false);
            }
            catch (Exception e) when (!aborted.IsCancellationRequested)
            {
                // The upstream may have answered and closed while we were sending: prefer its response if one arrives.
                connection.RequestIncomplete = true;
                sendFailure = new(ForwarderError.Request, StatusCodes.Status502BadGateway, UpstreamErrorKind.Send, e, true);
            }
            catch (Exception e) { sendFailure = new(ForwarderError.RequestCanceled, StatusCodes.Status400BadRequest, null, e, false); }
            if (sendFailure is { Kind: not UpstreamErrorKind.Send })
            {
                connection.CancelHeadRead();
                try { await headTask; } catch { }
                return sendFailure;
            }
            connection.ArmHeadTimeout(timeouts.ResponseHead);
            try { connection.LastHead = await headTask; return null; }
            catch (Exception e) { return sendFailure ?? HeadFailure(e, timeouts, aborted.IsCancellationRequested); }
        }
        finally
        {
            connection.EndHeadTimeout();
        }
    }

    /// <summary>Why reading the response head failed, as YARP's forwarder would report it.</summary>
    private static ExchangeFailure HeadFailure(Exception e, UpstreamTimeouts timeouts, bool clientAborted) => e switch
    {
        UpstreamHeadException { Failure: UpstreamHeadFailure.Malformed } =>
            new(ForwarderError.ResponseHeaders, StatusCodes.Status502BadGateway, UpstreamErrorKind.MalformedHead, e, false),
        UpstreamHeadException closed =>
            new(ForwarderError.Request, StatusCodes.Status502BadGateway, UpstreamErrorKind.ClosedBeforeHead, e, closed.BytesReceived == 0),
        OperationCanceledException when !clientAborted =>
            new(ForwarderError.RequestTimedOut, StatusCodes.Status504GatewayTimeout, UpstreamErrorKind.HeadTimeout,
                new TimeoutException($"no response head within {timeouts.ResponseHead.TotalMilliseconds:0} ms", e), false),
        _ => new(ForwarderError.RequestCanceled, StatusCodes.Status400BadRequest, null, e, false),
    };

    /// <summary>Status and fields to Kestrel's response: directly for the default transforms (null), else through the route's.</summary>
    internal static ValueTask<bool> CopyStatusAndHeadersAsync(HttpContext context, ResponseHead head, HttpTransformer? transformer)
    {
        context.Response.StatusCode = head.StatusCode;
        if (head.ReasonPhrase != Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(head.StatusCode))
        {
            var responseFeature = context.Find<IHttpResponseFeature>();
            if (responseFeature is not null) responseFeature.ReasonPhrase = head.ReasonPhrase;
        }
        if (transformer is null)
        {
            DefaultResponseHead.Copy(context.Response, head);
            return ValueTask.FromResult(true);
        }
        return TransformResponseHeadAsync(context, head, transformer);
    }

    private static async ValueTask<bool> TransformResponseHeadAsync(HttpContext context, ResponseHead head, HttpTransformer transformer)
    {
        using var message = new HttpResponseMessage((HttpStatusCode)head.StatusCode)
        {
            Version = head.MinorVersion == 0 ? HttpVersion.Version10 : HttpVersion.Version11,
            ReasonPhrase = head.ReasonPhrase,
            Content = new HeaderOnlyContent(),
        };
        foreach (var (name, value) in head.Headers)
            if (!message.Headers.TryAddWithoutValidation(name, value)) message.Content.Headers.TryAddWithoutValidation(name, value);
        return await transformer.TransformResponseAsync(context, message, context.RequestAborted);
    }

    private void Fail(HttpContext context, ForwarderError error, int status, Exception exception, UpstreamErrorKind? kind, bool requestSent = true)
    {
        if (kind is { } k) metrics.Error(k).Increment();
        if (IsClientGone(error, context.RequestAborted.IsCancellationRequested)) LogClientGone(logger, error, exception.Message);
        else LogFailure(logger, error, exception.Message);
        context.Features.Set<IForwarderErrorFeature>(new ZeroCopyForwarderErrorFeature(error, exception) { RequestSent = requestSent });
        if (context.Response.HasStarted) return;
        context.Response.StatusCode = status;
        // A client that stalled mid-body (408) left the rest of it unread: the connection cannot carry another request.
        if (status == StatusCodes.Status408RequestTimeout) context.Response.Headers.Connection = "close";
    }

    private static RequestBodyFraming RequestFraming(HttpContext context)
    {
        bool hasBody = context.Find<IHttpRequestBodyDetectionFeature>()?.CanHaveBody
            ?? (context.Request.ContentLength > 0 || context.Request.Headers.ContainsKey("Transfer-Encoding"));
        if (!hasBody) return RequestBodyFraming.None;
        return context.Request.ContentLength is not null && !context.Request.Headers.ContainsKey("Transfer-Encoding")
            ? RequestBodyFraming.ContentLength : RequestBodyFraming.Chunked;
    }

    private static bool IsIdempotent(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method)
        || HttpMethods.IsPut(method) || HttpMethods.IsDelete(method);

    /// <summary>
    /// A client that left mid-exchange (YARP's client-side cancellations, and the request really aborted): not a problem of
    /// the proxy or the upstream, so Debug, as YARP and the static files log it; wrk alone left up to 64 warnings per run.
    /// </summary>
    internal static bool IsClientGone(ForwarderError error, bool requestAborted) => requestAborted && error is
        ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled
        or ForwarderError.UpgradeRequestCanceled or ForwarderError.UpgradeResponseCanceled;

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "zero-copy forwarder: {Error}: {Reason}")]
    private static partial void LogFailure(ILogger logger, ForwarderError error, string reason);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Debug, Message = "zero-copy forwarder: the client left ({Error}): {Reason}")]
    private static partial void LogClientGone(ILogger logger, ForwarderError error, string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "zero-copy forwarder: {Destination} answered {Status} before the request body was sent; forwarding it and closing both connections")]
    private static partial void LogEarlyResponse(ILogger logger, string destination, int status);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "YARP's forwarder: the upstream answered {Status} before the request body was sent and closed; forwarding it, neither connection is reused")]
    private static partial void LogYarpEarlyResponse(ILogger logger, int status);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Debug, Message = "zero-copy forwarder: pooled connection to {Destination} failed before any response byte ({Reason}); retrying on a fresh connection")]
    private static partial void LogRetry(ILogger logger, string destination, string reason);
}
