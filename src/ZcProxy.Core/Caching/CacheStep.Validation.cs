using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Caching;

/// <summary>Validation (RFC 9111 §4.3): conditional requests, 304 and HEAD updates of the stored head.</summary>
internal sealed partial class CacheStep
{
    /// <summary>§4.3: a conditional request with the stored validators; 304 updates the entry, errors may fall back to it.</summary>
    private async Task RevalidateAsync(HttpContext context, Func<Task> next, string key, OpenEntry entry, CacheControl requestCc,
        CacheControl responseCc, TimeSpan staleness, bool background)
    {
        var request = context.Request;
        var stored = entry.Response;
        var saved = StripConditionals(request);
        var etags = stored.HeaderValues("ETag").ToArray();
        var lastModified = stored.Header("Last-Modified");
        bool conditional = etags.Length > 0 || lastModified is not null;
        if (etags.Length > 0) request.Headers.IfNoneMatch = string.Join(", ", etags);
        if (lastModified is not null) request.Headers.IfModifiedSince = lastModified;
        bool staleIfError = Freshness.MayServeStale(responseCc) &&
            ((responseCc.StaleIfError is { } a && staleness <= a) || (requestCc.StaleIfError is { } b && staleness <= b));

        var requestTime = cache.Time.GetUtcNow();
        HeaderDictionary? notModified = null, headResponse = null;
        int upstreamStatus = 0;
        ResponseInterceptor interceptor;
        try
        {
            interceptor = await ForwardInterceptedAsync(context, next, ctx =>
            {
                upstreamStatus = ctx.Response.StatusCode;
                if (upstreamStatus == StatusCodes.Status304NotModified && conditional)
                {
                    notModified = Snapshot(ctx.Response.Headers);
                    return (InterceptMode.Swallow, null);
                }
                if (upstreamStatus >= 500 && staleIfError) return (InterceptMode.Swallow, null);
                if (upstreamStatus == StatusCodes.Status200OK && HttpMethods.IsHead(request.Method)) headResponse = Snapshot(ctx.Response.Headers);
                return Decide(ctx, key, CacheStatus.Expired, HttpMethods.IsGet(request.Method), requestTime, background);
            });
        }
        finally
        {
            foreach (var (name, value) in saved) request.Headers[name] = value;
            if (etags.Length > 0 && !saved.ContainsKey("If-None-Match")) request.Headers.Remove("If-None-Match");
            if (lastModified is not null && !saved.ContainsKey("If-Modified-Since")) request.Headers.Remove("If-Modified-Since");
        }

        if (interceptor.Mode == InterceptMode.Swallow)
        {
            if (notModified is not null)
            {
                var updated = UpdateFromNotModified(entry, notModified, requestTime, cache.Time.GetUtcNow(), CacheIgnoreHeaders.StoresCookies(context));
                if (!background)
                    await writer.WriteAsync(context, Reopened(entry, updated), CacheStatus.Revalidated,
                        Freshness.CurrentAge(updated, cache.Time.GetUtcNow()));
            }
            else if (!background)
                await writer.WriteAsync(context, entry, CacheStatus.Stale, Freshness.CurrentAge(stored, cache.Time.GetUtcNow()));
            return;
        }
        // A full response superseded the stored one (it replaced it, or was not storable): the old variant goes.
        if (upstreamStatus is > 0 and < 500 && HttpMethods.IsGet(request.Method)) cache.Delete(entry.Entry);
        // §4.3.5: a 200 to HEAD freshens the stored GET when it describes the same representation, else invalidates it.
        if (headResponse is not null)
        {
            if (SameRepresentation(stored, headResponse)) UpdateFromNotModified(entry, headResponse, requestTime, cache.Time.GetUtcNow(), CacheIgnoreHeaders.StoresCookies(context));
            else cache.Delete(entry.Entry);
        }
    }

    private static HeaderDictionary Snapshot(IHeaderDictionary headers)
    {
        var copy = new HeaderDictionary();
        foreach (var (name, value) in headers) copy[name] = value;
        return copy;
    }

    private static bool SameRepresentation(StoredResponse stored, IHeaderDictionary head)
    {
        if (head.ContentLength is { } length && length != stored.BodyLength) return false;
        var etag = stored.Header("ETag");
        if (etag is not null || head.ETag.Count > 0) return etag == head.ETag.ToString();
        var lastModified = stored.Header("Last-Modified");
        if (lastModified is not null || head.LastModified.Count > 0) return lastModified == head.LastModified.ToString();
        return true;
    }

    /// <summary>§4.3.4: the 304's fields replace the stored ones; persisted by rewriting a copy of the file, renamed over it.</summary>
    private StoredResponse UpdateFromNotModified(OpenEntry entry, IHeaderDictionary notModified, DateTimeOffset requestTime, DateTimeOffset responseTime,
        bool storesCookies)
    {
        var replaced = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var fields = new List<(string, string)>();
        foreach (var (name, values) in notModified)
        {
            if (!StoredHead.IsStorable(name, notModified, storesCookies)) continue;
            replaced.Add(name);
            foreach (var v in values) if (v is not null) fields.Add((name, v));
        }
        var kept = entry.Response.Headers.Where(h => !replaced.Contains(h.Name) && !h.Name.Equals("Age", StringComparison.OrdinalIgnoreCase));
        var updated = entry.Response with { Headers = kept.Concat(fields).ToList(), RequestTime = requestTime, ResponseTime = responseTime };

        var temp = $"{entry.Path}.{cache.TempTag}-{Guid.NewGuid():N}.tmp";
        try
        {
            var block = EntryFile.Serialize(updated, out _, entry.BodyOffset);
            if (block.Length == 0)
            {
                cache.Delete(entry.Entry); // the new head does not fit before the body: the next miss stores it afresh
                return updated;
            }
            File.Copy(entry.Path, temp);
            using (var file = File.OpenHandle(temp, FileMode.Open, FileAccess.Write))
                RandomAccess.Write(file, block, 0);
            File.Move(temp, entry.Path, overwrite: true);
            cache.Committed(new IndexEntry { Hash = entry.Entry.Hash, Key = updated.Key, Vary = updated.Vary, Size = entry.Entry.Size, ResponseTime = responseTime });
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            DiskCache.TryDeleteFile(temp);
            cache.Metrics.FillErrors.Increment();
            LogUpdateFailed(entry.Response.Key, e.Message);
        }
        return updated;
    }

    private static OpenEntry Reopened(OpenEntry entry, StoredResponse updated) => entry.With(updated);
}
