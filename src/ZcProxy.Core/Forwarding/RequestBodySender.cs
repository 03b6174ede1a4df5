using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>Reading the client's request body failed (not the upstream's fault).</summary>
internal sealed class ClientBodyException(Exception inner) : IOException("reading the client's request body failed: " + inner.Message, inner);

/// <summary>
/// Copies the client's request body to the upstream (copy, not splice: Kestrel's socket transport has already
/// read it into user space). Content-Length bodies are sent as they are; others are re-chunked.
/// </summary>
internal static class RequestBodySender
{
    private static readonly byte[] LastChunk = "0\r\n\r\n"u8.ToArray();

    public static async Task<long> SendAsync(HttpRequest request, UpstreamConnection connection, RequestBodyFraming framing, ProxyMetrics metrics, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        long total = 0;
        try
        {
            while (true)
            {
                int n;
                // Leave room in front for a chunk-size line when re-chunking.
                var target = framing == RequestBodyFraming.Chunked ? buffer.AsMemory(16, buffer.Length - 18) : buffer.AsMemory();
                try { n = await request.Body.ReadAsync(target, cancellationToken); }
                catch (Exception e) when (e is not OperationCanceledException) { throw new ClientBodyException(e); }
                if (n == 0) break;
                total += n;
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
        }
    }
}
