using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// nginx's client_body_timeout for every upload (<c>ZeroCopy.ClientBodyTimeout</c>, 60 s): a client that sends nothing
/// of its request body for that long gets 408 and its connection is closed. Spliced bodies wait on the client socket
/// with it (<see cref="RequestBodySplicing.ClientTimeout"/>); every copied body (chunked, short, buffered for retries,
/// YARP's forwarder) is read through <see cref="ClientBodyTimeoutStream"/>: ZcProxy's copy loop wraps it for its
/// reads, YARP's path wraps the request's stream (YARP reads that). Kestrel's minimum body data rate is
/// switched off for proxied requests: it would cut a silent client after 5 s with a 400, one rule instead of two.
/// </summary>
internal static class ClientBodyTimeout
{
    /// <summary>The first proxy step: the upload's one timeout from now on is ours.</summary>
    public static void TakeOver(HttpContext context)
    {
        if (context.Find<IHttpMinRequestBodyDataRateFeature>() is { } rate) rate.MinDataRate = null;
    }

    /// <summary>The configured timeout (read per body: a reload applies to the next upload).</summary>
    public static TimeSpan Of(HttpContext context)
        => context.RequestServices?.GetService(typeof(RuntimeOptions)) is RuntimeOptions options ? options.Current.ZeroCopy.ClientBodyTimeout : Default;

    /// <summary>nginx's client_body_timeout default.</summary>
    public static readonly TimeSpan Default = TimeSpan.FromSeconds(60);

    /// <summary>The body as a copying reader reads it: through the timeout (the request's own stream when already wrapped).</summary>
    public static ClientBodyTimeoutStream ReaderOf(HttpRequest request)
        => request.Body as ClientBodyTimeoutStream ?? new ClientBodyTimeoutStream(request.Body, Of(request.HttpContext));

    /// <summary>After YARP's forwarder: a body read that timed out answers 408 and closes, as on the zero-copy path.</summary>
    public static void AnswerIfTimedOut(HttpContext context)
    {
        if (context.Request.Body is not ClientBodyTimeoutStream { TimedOut: true } || context.Response.HasStarted) return;
        context.Response.StatusCode = StatusCodes.Status408RequestTimeout;
        context.Response.Headers.Connection = "close"; // the rest of the body is unread: the connection cannot carry another request
    }
}

/// <summary>
/// A request body whose every read waits at most the client body timeout for bytes; then it throws
/// <see cref="ClientBodyException"/> (TimedOut). One timer per body, re-armed per read.
/// </summary>
internal sealed class ClientBodyTimeoutStream(Stream inner, TimeSpan timeout) : Stream
{
    private CancellationTokenSource? _timer;

    /// <summary>A read waited longer than the timeout: the client stalled.</summary>
    public bool TimedOut { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => false;
    public override long Length => inner.Length;
    public override long Position { get => inner.Position; set => inner.Position = value; }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_timer is null || !_timer.TryReset())
        {
            _timer?.Dispose();
            _timer = new CancellationTokenSource();
        }
        var timer = _timer;
        timer.CancelAfter(timeout);
        using var stop = cancellationToken.CanBeCanceled ? cancellationToken.UnsafeRegister(static t => ((CancellationTokenSource)t!).Cancel(), timer) : default;
        try
        {
            return await inner.ReadAsync(buffer, timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && timer.IsCancellationRequested)
        {
            TimedOut = true;
            throw new ClientBodyException(new TimeoutException($"the client sent no request body bytes for {timeout.TotalSeconds:0.###}s"), timedOut: true);
        }
        finally
        {
            if (!timer.IsCancellationRequested) timer.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _timer?.Dispose();
        base.Dispose(disposing);
    }
}
