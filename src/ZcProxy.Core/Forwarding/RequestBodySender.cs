using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>Reading the client's request body failed (not the upstream's fault); <see cref="TimedOut"/>: the client sent nothing for its body timeout.</summary>
internal sealed class ClientBodyException(Exception inner, bool timedOut = false) : IOException("reading the client's request body failed: " + inner.Message, inner)
{
    public bool TimedOut => timedOut;
}

/// <summary>
/// The one place a request body goes upstream. A Content-Length body of at least SpliceThreshold from a client of
/// ZcProxy's own transport is spliced (<see cref="RequestBodySplice"/>); the rest is copied: Content-Length bodies
/// as they are, others (chunked) re-chunked.
/// </summary>
internal static class RequestBodySender
{
    private static readonly byte[] LastChunk = "0\r\n\r\n"u8.ToArray();

    public static Task<long> SendAsync(HttpContext context, UpstreamConnection connection, RequestBodyFraming framing, ProxyMetrics metrics,
        RequestBodySplicing splicing, CancellationToken cancellationToken)
        => framing == RequestBodyFraming.ContentLength && RequestBodySplice.Qualifies(context, connection, splicing)
            ? RequestBodySplice.SendAsync(context, connection, metrics, splicing, cancellationToken)
            : CopyAsync(context.Request, connection, framing, metrics, cancellationToken);

    /// <summary>The copy loop: whatever of the body is left, read through Kestrel (or a wrapper) and sent on.</summary>
    public static async Task<long> CopyAsync(HttpRequest request, UpstreamConnection connection, RequestBodyFraming framing, ProxyMetrics metrics, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        var received = RequestBodyCount.Of(request.HttpContext);
        var body = ClientBodyTimeout.ReaderOf(request);
        long total = 0;
        try
        {
            while (true)
            {
                int n;
                // Leave room in front for a chunk-size line when re-chunking.
                var target = framing == RequestBodyFraming.Chunked ? buffer.AsMemory(16, buffer.Length - 18) : buffer.AsMemory();
                try { n = await body.ReadAsync(target, cancellationToken); }
                catch (Exception e) when (e is not OperationCanceledException and not ClientBodyException) { throw new ClientBodyException(e); }
                if (n == 0) break;
                total += n;
                received.Add(n);
                if (framing == RequestBodyFraming.Chunked)
                {
                    var size = Encoding.ASCII.GetBytes(n.ToString("x", CultureInfo.InvariantCulture) + "\r\n");
                    int start = 16 - size.Length;
                    size.CopyTo(buffer, start);
                    buffer[16 + n] = (byte)'\r';
                    buffer[16 + n + 1] = (byte)'\n';
                    await connection.SendAsync(buffer.AsMemory(start, size.Length + n + 2), cancellationToken);
                }
                else await connection.SendAsync(buffer.AsMemory(0, n), cancellationToken);
                metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Request, n);
            }
            if (framing == RequestBodyFraming.Chunked) await connection.SendAsync(LastChunk, cancellationToken);
            return total;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (!ReferenceEquals(body, request.Body)) body.Dispose(); // its timer only: the request's stream stays
        }
    }
}
