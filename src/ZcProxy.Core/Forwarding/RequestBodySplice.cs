using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>What decides and bounds a request-body splice: the length from which it pays, and the two idle timeouts.</summary>
/// <param name="ClientTimeout">A client that sends nothing for this long gets 408 (nginx client_body_timeout).</param>
/// <param name="UpstreamIdle">An upstream that takes nothing for this long failed (the body-idle timeout).</param>
internal readonly record struct RequestBodySplicing(long Threshold, TimeSpan ClientTimeout, TimeSpan UpstreamIdle);

/// <summary>
/// An upload of known length (Content-Length ≥ SpliceThreshold) from a client of ZcProxy's own transport, moved client
/// socket → pipe → upstream socket by <see cref="SpliceMove"/>: the bytes Kestrel already holds (read with the request
/// head) go first as data, counted as copied; the rest never enters user space. Its pull-based input (the input hole,
/// <see cref="ZeroCopyInput.BeginSplice"/>) keeps Kestrel's accounting exact: every spliced byte is credited there, and
/// Kestrel's body reader is then read to its end over the credited scratch bytes, so keep-alive and the next request
/// work as after a copied body. A failure says whose it was: the client's (<see cref="ClientBodyException"/>, a
/// timeout: 408), the upstream's (an IOException), or the caller stopped it (an early response: cancellation).
/// </summary>
internal sealed class RequestBodySplice : SpliceEnds
{
    private readonly ZeroCopyConnection _client;
    private readonly UpstreamConnection _upstream;
    private readonly LoopSocket _upstreamSocket;
    private readonly ProxyMetrics _metrics;
    private readonly RequestBodySplicing _settings;
    private readonly RequestBodyCount _received;

    private RequestBodySplice(ZeroCopyConnection client, UpstreamConnection upstream, LoopSocket upstreamSocket, ProxyMetrics metrics, RequestBodySplicing settings,
        RequestBodyCount received)
    {
        _received = received;
        _client = client;
        _upstream = upstream;
        _upstreamSocket = upstreamSocket;
        _metrics = metrics;
        _settings = settings;
    }

    /// <summary>Bytes taken from the client socket (credited to Kestrel's input).</summary>
    public long TakenBytes { get; private set; }

    /// <summary>
    /// True when this body can be spliced: long enough, the client on ZcProxy's transport and the upstream socket on its
    /// loop, and nobody between Kestrel and the forwarder reads the body (a body buffered for retries is replayed, so copied).
    /// </summary>
    public static bool Qualifies(HttpContext context, UpstreamConnection upstream, RequestBodySplicing settings)
        => context.Request.ContentLength is { } length && length > 0 && length >= settings.Threshold
            && context.Find<ZeroCopyResponse>() is { } zeroCopy && ReferenceEquals(context.Request.Body, zeroCopy.KestrelRequestBody)
            && upstream.Readiness is { } readiness && readiness.Loop == zeroCopy.Connection.Loop;

    /// <summary>
    /// True when this body will be spliced and its first bytes came with the request head (the client's input holds
    /// them): <see cref="SendAsync"/> sends them first thing, so the head may wait for them in the kernel (MSG_MORE) and
    /// leave in one segment with them. Whatever goes to the upstream next (those bytes, a copy, a splice, or the
    /// connection's close on a failure) sends the head too. A client waiting for 100 Continue has sent nothing: false.
    /// </summary>
    public static bool FirstBytesHeld(HttpContext context, UpstreamConnection upstream, long threshold)
        => Qualifies(context, upstream, new RequestBodySplicing(threshold, default, default))
            && context.Find<ZeroCopyResponse>()!.Connection.Input.Buffered > 0;

    /// <summary>Sends the body (it must <see cref="Qualifies">qualify</see>); returns the bytes sent.</summary>
    public static async Task<long> SendAsync(HttpContext context, UpstreamConnection upstream, ProxyMetrics metrics, RequestBodySplicing settings, CancellationToken cancellationToken)
    {
        var client = context.Find<ZeroCopyResponse>()!.Connection;
        long length = context.Request.ContentLength!.Value;
        var reader = context.Request.BodyReader;
        var received = RequestBodyCount.Of(context);

        // :: What Kestrel holds already (read with the head): copied. TryRead also starts the body for Kestrel. A client
        // that waits for 100 Continue has sent nothing yet, and Kestrel answers an Expect only from a read that has to
        // wait, never from TryRead: that first read goes through Kestrel (its bytes copied like held ones), the rest is spliced.
        long sent = 0;
        bool ended = false, readFirst = ExpectsContinue(context.Request);
        while (!ended)
        {
            if (!TryRead(reader, out var held))
            {
                if (!readFirst) break;
                held = await ReadAsync(reader, cancellationToken);
            }
            readFirst = false;
            ended = held.IsCompleted;
            foreach (var segment in held.Buffer)
            {
                await upstream.SendAsync(segment, cancellationToken);
                metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Request, segment.Length);
            }
            sent += held.Buffer.Length;
            received.Add(held.Buffer.Length);
            reader.AdvanceTo(held.Buffer.End);
            if (held.Buffer.IsEmpty) break;
        }
        if (ended || sent >= length) return sent;

        // :: The rest: spliced, unless no pipe can be had (copied, as every body past the pipe budget).
        var pipes = client.Shared.Pipes;
        var pipe = pipes.TryLease();
        if (pipe is null) return sent + await RequestBodySender.CopyAsync(context.Request, upstream, RequestBodyFraming.ContentLength, metrics, cancellationToken);
        if (!client.Input.BeginSplice())
        {
            pipes.Return(pipe, transferComplete: true);
            return sent + await RequestBodySender.CopyAsync(context.Request, upstream, RequestBodyFraming.ContentLength, metrics, cancellationToken);
        }
        var splice = new RequestBodySplice(client, upstream, upstream.Readiness!, metrics, settings, received);
        var result = BodyResult.Failed(BodyOutcome.TransportFailed, "the splice did not run");
        try { result = await SpliceMove.RunAsync(splice, pipe, length - sent, cancellationToken); }
        finally
        {
            client.Input.EndSplice();
            pipes.Return(pipe, result.IsComplete); // a pipe that may hold bytes of a broken body is closed
        }
        cancellationToken.ThrowIfCancellationRequested(); // stopped by an early response, or the client connection went away
        switch (result.Outcome)
        {
            case BodyOutcome.Complete: break;
            case BodyOutcome.SinkFailed: throw new IOException($"sending the request body to the upstream failed: {result.Reason}");
            case BodyOutcome.SourceTimedOut: throw new ClientBodyException(new TimeoutException(result.Reason), timedOut: true);
            default: throw new ClientBodyException(new IOException(result.Reason));
        }

        // :: Kestrel reads the body to its end over the credited bytes (they are all buffered: nothing waits).
        long credited = splice.TakenBytes;
        while (credited > 0 && reader.TryRead(out var skipped))
        {
            long take = Math.Min(credited, skipped.Buffer.Length);
            reader.AdvanceTo(skipped.Buffer.GetPosition(take));
            credited -= take;
            if (skipped.IsCompleted || take == 0) break;
        }
        return length;
    }

    private static bool TryRead(System.IO.Pipelines.PipeReader reader, out System.IO.Pipelines.ReadResult result)
    {
        try { return reader.TryRead(out result); }
        catch (Exception e) when (e is not OperationCanceledException) { throw new ClientBodyException(e); }
    }

    private static async ValueTask<System.IO.Pipelines.ReadResult> ReadAsync(System.IO.Pipelines.PipeReader reader, CancellationToken cancellationToken)
    {
        try { return await reader.ReadAsync(cancellationToken); }
        catch (Exception e) when (e is not OperationCanceledException) { throw new ClientBodyException(e); }
    }

    /// <summary>An HTTP/1.1 request with "Expect: 100-continue", which Kestrel answers (RFC 9110 §10.1.1).</summary>
    private static bool ExpectsContinue(HttpRequest request)
    {
        if (!HttpProtocol.IsHttp11(request.Protocol)) return false;
        foreach (var value in request.Headers.Expect)
            if (string.Equals(value, "100-continue", StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    protected override bool ClientAborted => _client.IsAborted;
    public override SafeHandle Source => _client.ClientHandle;
    public override SafeHandle Sink => _upstream.Socket.SafeHandle;
    public override int SourceSequence => _client.ClientSocket.ReadSequence;
    protected override LoopSocket SinkSocket => _upstreamSocket;
    protected override LoopSocket SourceSocket() => _client.ClientSocket;
    protected override TimeSpan SourceIdle => _settings.ClientTimeout;
    protected override TimeSpan SinkIdle => _settings.UpstreamIdle;

    /// <summary>nginx's client_body_timeout: the caller answers 408.</summary>
    protected override BodyResult SourceStalled()
        => BodyResult.Failed(BodyOutcome.SourceTimedOut, $"the client sent nothing for {_settings.ClientTimeout.TotalMilliseconds:0} ms");
    protected override BodyResult SinkStalled()
        => BodyResult.Failed(BodyOutcome.SinkFailed, $"the upstream took no byte for {_settings.UpstreamIdle.TotalMilliseconds:0} ms");

    public override BodyResult SourceFailed(string reason) => BodyResult.Failed(BodyOutcome.SourceFailed, $"the client connection failed: {reason}");
    public override BodyResult SourceEnded(long left) => BodyResult.Failed(BodyOutcome.SourceEnded, $"the client closed with {left} body bytes unsent");
    public override BodyResult SinkFailed(string reason) => BodyResult.Failed(BodyOutcome.SinkFailed, reason);
    public override BodyResult Cancelled() => BodyResult.Failed(BodyOutcome.ClientFailed, "stopped");

    public override void Taken(long bytes)
    {
        TakenBytes += bytes;
        _received.Add(bytes);
        _client.Input.CreditSpliced(bytes);
    }

    public override void Delivered(long bytes)
    {
        _upstream.CountSent(bytes);
        _metrics.AddBodyBytes(BodyMechanism.Splice, BodyDirection.Request, bytes);
    }
}
