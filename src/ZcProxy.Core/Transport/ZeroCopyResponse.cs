using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Output;

namespace ZcProxy.Core.Transport;

/// <summary>
/// The zero-copy side of one HTTP/1.x response on a zero-copy connection, set per request by
/// <see cref="ZeroCopyTransportExtensions.UseZeroCopyResponses"/>: the connection, and Kestrel's own response body
/// feature, captured before any step wraps it, because a hole's placeholder bytes must reach Kestrel's writer
/// directly (<see cref="ResponseBodySender"/>), and Kestrel's own request body (Forwarding's RequestBodySplice).
/// </summary>
internal sealed class ZeroCopyResponse(HttpContext context, ZeroCopyConnection connection, IHttpResponseBodyFeature kestrelBody)
{
    public ZeroCopyConnection Connection => connection;

    /// <summary>Kestrel's feature; the body feature in HttpContext.Features may be a wrapper around it.</summary>
    public IHttpResponseBodyFeature KestrelBody => kestrelBody;

    /// <summary>
    /// Kestrel's own request body stream, as the request arrived: a request body may be spliced only while nobody
    /// replaced it (a retry's buffering, a counting wrapper), since the splice bypasses whatever reads it.
    /// </summary>
    public Stream KestrelRequestBody { get; } = context.Request.Body;

    /// <summary>
    /// True while a body of <paramref name="length"/> bytes can go as a hole: the writer is healthy, the head is not
    /// sent yet, and Kestrel frames the body by that Content-Length (chunked mode reserves framing bytes in every
    /// buffer it hands out, so no hole there).
    /// </summary>
    public bool CanTakeHole(long length)
    {
        var response = context.Response;
        return connection.Output.IsHealthy && !response.HasStarted && response.ContentLength == length && response.Headers.TransferEncoding.Count == 0;
    }

    /// <summary>
    /// Head into our writer (flushed with MSG_MORE), then <paramref name="length"/> scratch bytes advanced through
    /// Kestrel's body writer, so Kestrel's Content-Length and keep-alive bookkeeping stay right; our writer then runs
    /// <paramref name="move"/> to move the real bytes in the kernel (<see cref="ZeroCopyOutputWriter.FlushHoleAsync"/>:
    /// on this loop, not behind Kestrel's flush), and Kestrel's flush follows. <paramref name="lead"/>: the first of the
    /// <paramref name="length"/> bytes, in user space already, sent with the head (<see cref="ZeroCopyOutputWriter.BeginHole"/>).
    /// A failure has aborted the connection.
    /// </summary>
    public async Task<BodyResult> SendHoleAsync(Func<CancellationToken, ValueTask<BodyResult>> move, long length, ReadOnlyMemory<byte> lead = default)
    {
        var aborted = context.RequestAborted;
        var output = connection.Output;
        var body = kestrelBody.Writer;
        Exception? thrown = null;
        try
        {
            output.ExpectHole();
            await kestrelBody.StartAsync(aborted);
            output.BeginHole(move, length, aborted, lead);
            for (long left = length; left > 0;)
            {
                var memory = body.GetMemory();
                int n = (int)Math.Min(memory.Length, left);
                body.Advance(n);
                left -= n;
            }
            await output.FlushHoleAsync(aborted);
            await body.FlushAsync(aborted);
        }
        catch (Exception e) { thrown = e; }
        // The writer knows what happened to the bytes; Kestrel's flush may only report a cancellation.
        return output.EndHole(thrown);
    }
}
