using System.Buffers;
using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Answers a request from an opened entry: stored head plus Age and X-Cache-Status, client conditionals (304/412),
/// HEAD, a single Range (206/416). The body moves by one decision: below DirectIoThreshold sendfile(2) through
/// the zero-copy transport (or a copy without it), at or above it O_DIRECT reads.
/// </summary>
internal static class CachedResponseWriter
{
    public static async Task WriteAsync(HttpContext context, OpenEntry entry, DiskCache cache, string status, TimeSpan age)
    {
        var stored = entry.Response;
        var response = context.Response;
        var request = context.Request;
        response.Headers.Clear();
        response.StatusCode = stored.Status;
        foreach (var (name, value) in stored.Headers)
            if (!name.Equals("Age", StringComparison.OrdinalIgnoreCase)) response.Headers.Append(name, value);
        response.Headers.Age = Freshness.AgeHeader(age);
        CacheStep.SetStatus(context, status);

        if (ClientConditionals.Evaluate(request, stored) is { } code)
        {
            response.StatusCode = code;
            if (code == StatusCodes.Status304NotModified)
            {
                foreach (var name in response.Headers.Keys.ToList())
                    if (!ClientConditionals.NotModifiedFields.Contains(name) && name is not ("Age" or CacheStatus.HeaderName)) response.Headers.Remove(name);
            }
            else response.ContentLength = 0;
            return;
        }

        var (outcome, start, length) = RangeRequest.Evaluate(request, stored);
        if (outcome == RangeRequest.Outcome.Unsatisfiable)
        {
            response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
            response.Headers.ContentRange = $"bytes */{stored.BodyLength.ToString(CultureInfo.InvariantCulture)}";
            response.ContentLength = 0;
            return;
        }
        if (outcome == RangeRequest.Outcome.Partial)
        {
            response.StatusCode = StatusCodes.Status206PartialContent;
            response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {start}-{start + length - 1}/{stored.BodyLength}");
        }
        if (stored.Status is 204 or 304) return;
        response.ContentLength = length;
        if (HttpMethods.IsHead(request.Method) || length == 0) return;
        await SendBodyAsync(context, entry, cache, start, length);
    }

    private static async Task SendBodyAsync(HttpContext context, OpenEntry entry, DiskCache cache, long start, long length)
    {
        var metrics = cache.Metrics.Body;
        long fileOffset = entry.BodyOffset + start;
        var ct = context.RequestAborted;
        if (entry.Response.BodyLength >= cache.Options.DirectIoThreshold
            && DirectIoSender.TryOpen(entry.Path, entry.BodyOffset + entry.Response.BodyLength) is { } direct)
        {
            using (direct)
            {
                if (context.Features.Get<IZeroCopyResponseFeature>() is { CanSendFile: true } transport)
                {
                    // Sent from the aligned buffers straight to the socket; counts mechanism="directio" itself.
                    await transport.SendDirectIoAsync(direct, fileOffset, length, ct);
                    return;
                }
                await context.Response.StartAsync(ct);
                try { await DirectIoSender.SendAsync(direct, fileOffset, length, context.Response.BodyWriter, ct); }
                catch (IOException) { context.Abort(); throw; }
                metrics.AddBodyBytes(BodyMechanism.DirectIo, BodyDirection.Response, length);
            }
            return;
        }
        if (context.Features.Get<IZeroCopyResponseFeature>() is { CanSendFile: true } zeroCopy)
        {
            await zeroCopy.SendFileAsync(entry.File, fileOffset, length, ct); // counts mechanism="sendfile" itself
            return;
        }
        await CopyAsync(context, entry, fileOffset, length, ct);
        metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, length);
    }

    private static async Task CopyAsync(HttpContext context, OpenEntry entry, long offset, long length, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(128 * 1024);
        try
        {
            var body = context.Features.Get<IHttpResponseBodyFeature>()!.Stream;
            long remaining = length;
            while (remaining > 0)
            {
                // Below DirectIoThreshold the body is normally in the page cache: a plain pread beats a thread-pool hop.
                int n = RandomAccess.Read(entry.File, buffer.AsSpan(0, (int)Math.Min(buffer.Length, remaining)), offset);
                if (n == 0)
                {
                    context.Abort(); // the file shrank under us: never pass a short body off as complete
                    throw new IOException("cache file ended early");
                }
                await body.WriteAsync(buffer.AsMemory(0, n), ct);
                offset += n;
                remaining -= n;
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }
}
