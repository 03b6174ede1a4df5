using System.Globalization;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Output;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Answers a request from an opened entry: stored head plus Age and X-Cache-Status, client conditionals (304/412),
/// HEAD, a single Range (206/416). The body is a file range below DirectIoThreshold and an O_DIRECT file at or above
/// it; <see cref="ResponseBodySender"/> decides how it moves (sendfile, sends from the aligned buffers, or a copy).
/// </summary>
internal sealed class CachedResponseWriter(DiskCache cache, ResponseBodySender sender, BodyOutcomeReport report)
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

    private async Task SendBodyAsync(HttpContext context, OpenEntry entry, long start, long length)
    {
        long fileOffset = entry.BodyOffset + start;
        BodySource? direct = entry.Response.BodyLength >= cache.Options.DirectIoThreshold
            ? DirectFileSource.TryOpen(entry.Path, entry.BodyOffset + entry.Response.BodyLength, fileOffset, length) : null;
        await using var source = direct ?? new FileRangeSource(entry.File, fileOffset, length);
        var result = await sender.SendAsync(context, source);
        if (!result.IsComplete) report.StoredBodyFailed(context, result, entry.Response.Key);
    }
}
