using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Balancing;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Forwarding;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Transport;

/// <summary>
/// The zero-copy side of the current HTTP/1.x request on a zero-copy connection, set per request by
/// <see cref="ZeroCopyTransportExtensions.UseZeroCopyResponses"/>: the connection, and Kestrel's own response body
/// feature, captured before any step wraps it, because a hole's placeholder bytes must reach Kestrel's writer
/// directly (<see cref="ResponseBodySender"/>), and Kestrel's own request body (Forwarding's RequestBodySplice).
/// One per connection, made for its first request and reset by <see cref="Begin"/> for each next one (HTTP/1.x runs
/// one request at a time, and a request's completed callbacks run before the next one starts), so it also carries the
/// request's other per-request state objects for reuse: the upstream timing and the pool state, allocated once per
/// connection rather than once per request, and the upstream request head's buffer object.
/// </summary>
internal sealed class ZeroCopyResponse(ZeroCopyConnection connection)
{
    private HttpContext _context = null!;
    private IHttpResponseBodyFeature _kestrelBody = null!;

    public ZeroCopyConnection Connection => connection;

    /// <summary>Kestrel's feature; the body feature in HttpContext.Features may be a wrapper around it.</summary>
    public IHttpResponseBodyFeature KestrelBody => _kestrelBody;

    /// <summary>
    /// Kestrel's own request body stream, as the request arrived: a request body may be spliced only while nobody
    /// replaced it (a retry's buffering, a counting wrapper), since the splice bypasses whatever reads it.
    /// </summary>
    public Stream KestrelRequestBody { get; private set; } = Stream.Null;

    /// <summary>This connection's <see cref="UpstreamTiming"/>, reset by each request that times an upstream exchange.</summary>
    internal UpstreamTiming? Timing { get; set; }

    /// <summary>This connection's <see cref="BalancingRequestFeature"/>, reset by each request that is balanced.</summary>
    internal BalancingRequestFeature? Pool { get; set; }

    private HeadBuffer? _requestHead;

    /// <summary>This connection's upstream request head buffer, emptied for the request now forwarded; the forwarder releases its array after the exchange.</summary>
    internal HeadBuffer RequestHead() => _requestHead is { } reused ? reused.Restart() : _requestHead = new HeadBuffer();

    /// <summary>The connection's next request begins: Kestrel's body feature as it is before any step wraps it.</summary>
    public ZeroCopyResponse Begin(HttpContext context, IHttpResponseBodyFeature kestrelBody)
    {
        _context = context;
        _kestrelBody = kestrelBody;
        KestrelRequestBody = context.Request.Body;
        return this;
    }

    /// <summary>
    /// The request is over: its context is let go. ZcProxy's own HTTP/1.1 layer pools request objects per loop, not
    /// per connection, so an idle connection must not keep its last one alive through this object.
    /// </summary>
    public void End()
    {
        _context = null!;
        _kestrelBody = null!;
        KestrelRequestBody = Stream.Null;
    }

    /// <summary>
    /// True while a body of <paramref name="length"/> bytes can go as a hole: the writer is healthy, the head is not
    /// sent yet, and Kestrel frames the body by that Content-Length (chunked mode reserves framing bytes in every
    /// buffer it hands out, so no hole there).
    /// </summary>
    public bool CanTakeHole(long length)
    {
        var response = _context.Response;
        return connection.Output.IsHealthy && !response.HasStarted && response.ContentLength == length && response.Headers.TransferEncoding.Count == 0;
    }

    /// <summary>
    /// Head into our writer (flushed with MSG_MORE), then <paramref name="length"/> scratch bytes advanced through
    /// Kestrel's body writer, so Kestrel's Content-Length and keep-alive bookkeeping stay right; our writer then runs
    /// <paramref name="move"/> to move the real bytes in the kernel (<see cref="ZeroCopyOutputWriter.FlushHoleAsync"/>:
    /// on this loop, not behind Kestrel's flush), and Kestrel's flush follows. <paramref name="lead"/>: the first of the
    /// <paramref name="length"/> bytes, in user space already, sent with the head (<see cref="ZeroCopyOutputWriter.BeginHole"/>).
    /// A failure has aborted the connection.
    /// Without an async frame while nothing waits (the head starts, the hole's flush and Kestrel's complete at once: most
    /// spliced 64 KiB bodies); the first step that waits continues in <see cref="FinishHoleAsync"/>.
    /// </summary>
    public ValueTask<BodyResult> SendHoleAsync(Func<CancellationToken, ValueTask<BodyResult>> move, long length, ReadOnlyMemory<byte> lead = default)
    {
        var aborted = _context.RequestAborted;
        var output = connection.Output;
        try
        {
            output.ExpectHole();
            var starting = _kestrelBody.StartAsync(aborted);
            if (!starting.IsCompletedSuccessfully) return FinishHoleAsync(starting, null, null, move, length, lead, aborted);
            OpenHole(move, length, lead, aborted);
            var moving = output.FlushHoleAsync(aborted);
            if (!moving.IsCompletedSuccessfully) return FinishHoleAsync(null, moving, null, move, length, lead, aborted);
            _ = moving.GetAwaiter().GetResult();
            var flushing = _kestrelBody.Writer.FlushAsync(aborted);
            if (!flushing.IsCompletedSuccessfully) return FinishHoleAsync(null, null, flushing, move, length, lead, aborted);
            _ = flushing.GetAwaiter().GetResult();
        }
        catch (Exception e) { return new ValueTask<BodyResult>(output.EndHole(e)); }
        // The writer knows what happened to the bytes; Kestrel's flush may only report a cancellation.
        return new ValueTask<BodyResult>(output.EndHole());
    }

    /// <summary>
    /// <see cref="SendHoleAsync"/> from the step that waits: the head's start (<paramref name="starting"/>), the hole's
    /// flush (<paramref name="moving"/>) or Kestrel's flush after it (<paramref name="flushing"/>).
    /// </summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended for the whole move: a pooled frame, not a box per body
    private async ValueTask<BodyResult> FinishHoleAsync(Task? starting, ValueTask<FlushResult>? moving, ValueTask<FlushResult>? flushing,
        Func<CancellationToken, ValueTask<BodyResult>> move, long length, ReadOnlyMemory<byte> lead, CancellationToken aborted)
    {
        var output = connection.Output;
        Exception? thrown = null;
        try
        {
            if (starting is not null)
            {
                await starting;
                OpenHole(move, length, lead, aborted);
                await output.FlushHoleAsync(aborted);
                await _kestrelBody.Writer.FlushAsync(aborted);
            }
            else if (moving is { } hole)
            {
                await hole;
                await _kestrelBody.Writer.FlushAsync(aborted);
            }
            else await flushing!.Value;
        }
        catch (Exception e) { thrown = e; }
        return output.EndHole(thrown);
    }

    /// <summary>
    /// Opens the hole in our writer and advances Kestrel's body writer over <paramref name="length"/> scratch bytes, so its
    /// Content-Length and keep-alive bookkeeping stay right.
    /// </summary>
    private void OpenHole(Func<CancellationToken, ValueTask<BodyResult>> move, long length, ReadOnlyMemory<byte> lead, CancellationToken aborted)
    {
        connection.Output.BeginHole(move, length, aborted, lead);
        var body = _kestrelBody.Writer;
        for (long left = length; left > 0;)
        {
            var memory = body.GetMemory();
            int n = (int)Math.Min(memory.Length, left);
            body.Advance(n);
            left -= n;
        }
    }
}
