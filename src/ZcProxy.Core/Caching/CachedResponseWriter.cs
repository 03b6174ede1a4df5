using System.Globalization;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Output;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Answers a request from an opened entry: stored head plus Age and X-Cache-Status, client conditionals (304/412),
/// HEAD, a single Range (206/416). Whether the body is read from the page cache or with O_DIRECT is
/// <see cref="FileRangeSending"/>'s decision (Cache.DirectIo); <see cref="ResponseBodySender"/> decides how it moves
/// (sendfile, sends from the aligned buffers, or a copy).
/// </summary>
internal sealed class CachedResponseWriter(DiskCache cache, FileRangeSending files, ResponseBodySender sender, BodyOutcomeReport report)
{
    public async Task WriteAsync(HttpContext context, OpenEntry entry, string status, TimeSpan age)
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
        await SendBodyAsync(context, entry, start, length);
    }

    /// <summary>
    /// Answers from cache slices (<see cref="SliceRange"/>): bytes [start, start+length) of an object of
    /// <paramref name="total"/> bytes, as a 206 with its Content-Range when <paramref name="partial"/>, else a 200 of the
    /// whole object. <paramref name="slices"/> are consecutive slices covering the range, the first holding
    /// <paramref name="start"/>; the head is the first slice's stored one, without its own Content-Range.
    /// </summary>
    public async Task WriteSlicesAsync(HttpContext context, IReadOnlyList<OpenEntry> slices, long sliceSize, long total, long start, long length,
        bool partial, string status, TimeSpan age)
    {
        var response = context.Response;
        response.Headers.Clear();
        response.StatusCode = partial ? StatusCodes.Status206PartialContent : StatusCodes.Status200OK;
        foreach (var (name, value) in slices[0].Response.Headers)
            if (!name.Equals("Age", StringComparison.OrdinalIgnoreCase) && !name.Equals("Content-Range", StringComparison.OrdinalIgnoreCase))
                response.Headers.Append(name, value);
        response.Headers.Age = Freshness.AgeHeader(age);
        if (partial) response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {start}-{start + length - 1}/{total}");
        CacheStep.SetStatus(context, status);
        response.ContentLength = length;
        if (length == 0) return;
        var options = cache.Options;
        var policy = new DirectIoPolicy(options.DirectIo, options.DirectIoThreshold);
        var parts = new List<BodySource>(slices.Count);
        long position = start, end = start + length;
        foreach (var slice in slices)
        {
            long sliceStart = (position / sliceSize) * sliceSize;
            long from = position - sliceStart, count = Math.Min(end, sliceStart + slice.Response.BodyLength) - position;
            long bodyLength = slice.Response.BodyLength;
            parts.Add(files.Open(slice.File, slice.Path, slice.BodyOffset + bodyLength, slice.BodyOffset + from, count, bodyLength, policy));
            position += count;
        }
        await using var source = new ConcatenatedSource(parts);
        var result = await sender.SendAsync(context, source);
        if (!result.IsComplete) report.StoredBodyFailed(context, result, slices[0].Response.Key);
    }

    private async Task SendBodyAsync(HttpContext context, OpenEntry entry, long start, long length)
    {
        var options = cache.Options;
        long bodyLength = entry.Response.BodyLength;
        await using var source = files.Open(entry.File, entry.Path, entry.BodyOffset + bodyLength, entry.BodyOffset + start, length, bodyLength,
            new DirectIoPolicy(options.DirectIo, options.DirectIoThreshold));
        var result = await sender.SendAsync(context, source);
        if (!result.IsComplete) report.StoredBodyFailed(context, result, entry.Response.Key);
    }
}
