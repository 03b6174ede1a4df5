using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The first proxy-pipeline step on routes with Metadata "Cache": "on": RFC 9111 shared-cache semantics in
/// front of the forwarders. Hits never reach them; misses and validations pass through them with the response
/// body intercepted (teed into a fill, or swallowed when the cache answers instead).
/// </summary>
public sealed partial class CacheStep(DiskCache cache, IHttpForwarder forwarder, IServiceProvider services, ILogger<CacheStep> log)
{
    private const string RefreshLockSuffix = "\n#refresh";

    public static void SetStatus(HttpContext context, string status, bool background = false)
    {
        context.Response.Headers[CacheStatus.HeaderName] = status;
        if (!background) context.Items[AccessLogMiddleware.CacheStatusItem] = status;
    }

    public static bool IsEnabled(HttpContext context)
        => context.Features.Get<IReverseProxyFeature>()?.Route.Config.Metadata is { } metadata
           && metadata.TryGetValue("Cache", out var value) && ConfigValidator.IsOn(value);

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        if (!IsEnabled(context))
        {
            await next();
            return;
        }
        try
        {
            await HandleAsync(context, next);
        }
        finally
        {
            if (context.Items.TryGetValue(AccessLogMiddleware.CacheStatusItem, out var s) && s is string status) cache.Metrics.CountRequest(status);
        }
    }

    private async Task HandleAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        var options = cache.Options;
        if (!IsSafe(request.Method))
        {
            await next();
            InvalidateAfterUnsafe(context, options.Key);
            return;
        }
        if (!options.Methods.Contains(request.Method, StringComparer.OrdinalIgnoreCase))
        {
            SetStatus(context, CacheStatus.Bypass);
            await next();
            return;
        }

        var key = CacheKey.For(options.Key, request);
        var requestCc = RequestDirectives(request);
        var entry = Lookup(key, request);
        if (entry is null && !requestCc.OnlyIfCached && HttpMethods.IsGet(request.Method))
        {
            var running = cache.Lock.TryAcquire(key);
            if (running is null)
            {
                bool stored = false;
                try { stored = await FetchAsync(context, next, key, CacheStatus.Miss, allowFill: true); }
                finally { cache.Lock.Release(key, stored); }
                return;
            }
            // Another request is fetching this key: wait for its entry (bounded), then answer from it.
            if (await cache.Lock.WaitAsync(running, options.LockTimeout, context.RequestAborted)) entry = Lookup(key, request);
            if (entry is null)
            {
                await FetchAsync(context, next, key, CacheStatus.Miss, allowFill: false);
                return;
            }
        }
        using (entry)
        {
            if (entry is null)
            {
                if (requestCc.OnlyIfCached) await GatewayTimeoutAsync(context);
                else await FetchAsync(context, next, key, CacheStatus.Miss, allowFill: false); // HEAD: forwarded, not stored
                return;
            }
            await AnswerFromEntryAsync(context, next, key, entry, requestCc);
        }
    }

    private async Task AnswerFromEntryAsync(HttpContext context, Func<Task> next, string key, OpenEntry entry, CacheControl requestCc)
    {
        var stored = entry.Response;
        var responseCc = CacheControl.Parse(stored.Header("Cache-Control"));
        var now = cache.Time.GetUtcNow();
        var age = Freshness.CurrentAge(stored, now);
        var lifetime = Freshness.Lifetime(stored);
        bool fresh = lifetime > age;
        var staleness = age - lifetime;

        if (UsableWithoutValidation(requestCc, responseCc, age, lifetime))
        {
            await CachedResponseWriter.WriteAsync(context, entry, cache, fresh ? CacheStatus.Hit : CacheStatus.Stale, age);
            return;
        }
        if (requestCc.OnlyIfCached)
        {
            await GatewayTimeoutAsync(context);
            return;
        }
        // RFC 5861: serve stale while one refresh per key runs in the background.
        if (!fresh && !requestCc.NoCache && Freshness.MayServeStale(responseCc)
            && responseCc.StaleWhileRevalidate is { } window && staleness <= window)
        {
            if (cache.Lock.TryAcquire(key + RefreshLockSuffix) is null && !StartBackgroundRefresh(context, key, entry.Entry))
                cache.Lock.Release(key + RefreshLockSuffix, false);
            await CachedResponseWriter.WriteAsync(context, entry, cache, CacheStatus.Updating, age);
            return;
        }
        await RevalidateAsync(context, next, key, entry, requestCc, responseCc, staleness, background: false);
    }

    /// <summary>RFC 9111 §4.2 with the request directives of §5.2.1.</summary>
    private static bool UsableWithoutValidation(CacheControl requestCc, CacheControl responseCc, TimeSpan age, TimeSpan lifetime)
    {
        if (requestCc.NoCache || responseCc.NoCache) return false;
        if (requestCc.Has("max-age") && requestCc.MaxAge is { } maxAge && age > maxAge) return false;
        if (requestCc.MinFresh is { } minFresh && lifetime - age < minFresh) return false;
        if (lifetime > age) return true;
        if (!requestCc.Has("max-stale") || !Freshness.MayServeStale(responseCc)) return false;
        var maxStale = requestCc.Seconds("max-stale");
        return requestCc.Argument("max-stale") is null || (maxStale is { } limit && age - lifetime <= limit);
    }

    /// <summary>A request to the origin whose response the client gets (and the cache stores when it may). True when stored.</summary>
    private async Task<bool> FetchAsync(HttpContext context, Func<Task> next, string key, string status, bool allowFill)
    {
        var requestTime = cache.Time.GetUtcNow();
        var interceptor = await ForwardInterceptedAsync(context, next, ctx => Decide(ctx, key, status, allowFill, requestTime, false));
        return interceptor.Fill?.Committed == true;
    }

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
                var updated = UpdateFromNotModified(entry, notModified, requestTime, cache.Time.GetUtcNow());
                if (!background)
                    await CachedResponseWriter.WriteAsync(context, Reopened(entry, updated), cache, CacheStatus.Revalidated,
                        Freshness.CurrentAge(updated, cache.Time.GetUtcNow()));
            }
            else if (!background)
                await CachedResponseWriter.WriteAsync(context, entry, cache, CacheStatus.Stale, Freshness.CurrentAge(stored, cache.Time.GetUtcNow()));
            return;
        }
        // A full response superseded the stored one (it replaced it, or was not storable): the old variant goes.
        if (upstreamStatus is > 0 and < 500 && HttpMethods.IsGet(request.Method)) cache.Delete(entry.Entry);
        // §4.3.5: a 200 to HEAD freshens the stored GET when it describes the same representation, else invalidates it.
        if (headResponse is not null)
        {
            if (SameRepresentation(stored, headResponse)) UpdateFromNotModified(entry, headResponse, requestTime, cache.Time.GetUtcNow());
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

    /// <summary>
    /// stale-while-revalidate's refresh, detached from the client's request (which is answered at once and whose
    /// connection moves on): a copy of the request goes through YARP's forwarder to one of the route's destinations,
    /// with the route's transforms; its response updates or replaces the entry and goes nowhere else.
    /// </summary>
    private bool StartBackgroundRefresh(HttpContext context, string key, IndexEntry indexEntry)
    {
        var proxy = context.Features.Get<IReverseProxyFeature>();
        if (proxy is null) return false;
        var destinations = proxy.AvailableDestinations.Count > 0 ? proxy.AvailableDestinations : proxy.AllDestinations;
        if (destinations.Count == 0) return false;
        var destination = destinations[Random.Shared.Next(destinations.Count)];
        var background = CopyRequest(context, proxy);
        var cluster = proxy.Cluster;
        var transformer = proxy.Route.Transformer;
        _ = Task.Run(async () =>
        {
            try
            {
                using var entry = cache.Open(indexEntry);
                if (entry is null) return;
                var responseCc = CacheControl.Parse(entry.Response.Header("Cache-Control"));
                await RevalidateAsync(background, async () =>
                {
                    await forwarder.SendAsync(background, destination.Model.Config.Address, cluster.HttpClient,
                        cluster.Config.HttpRequest ?? ForwarderRequestConfig.Empty, transformer);
                }, key, entry, CacheControl.Empty, responseCc, TimeSpan.MaxValue, background: true);
            }
            catch (Exception e)
            {
                LogRefreshFailed(key, e.Message);
            }
            finally
            {
                cache.Lock.Release(key + RefreshLockSuffix, true);
            }
        });
        return true;
    }

    private HttpContext CopyRequest(HttpContext context, IReverseProxyFeature proxy)
    {
        var copy = new DefaultHttpContext { RequestServices = services };
        copy.Features.Set<IHttpResponseBodyFeature>(new DiscardBodyFeature());
        copy.Features.Set(proxy);
        var from = context.Request;
        var to = copy.Request;
        to.Method = HttpMethods.Get;
        to.Protocol = from.Protocol;
        to.Scheme = from.Scheme;
        to.Host = from.Host;
        to.PathBase = from.PathBase;
        to.Path = from.Path;
        to.QueryString = from.QueryString;
        foreach (var (name, value) in from.Headers)
            if (name is not ("Content-Length" or "Transfer-Encoding" or "Expect") && !name.StartsWith("If-", StringComparison.OrdinalIgnoreCase) && name != "Range")
                to.Headers[name] = value;
        copy.Connection.RemoteIpAddress = context.Connection.RemoteIpAddress;
        copy.Connection.RemotePort = context.Connection.RemotePort;
        copy.Connection.LocalIpAddress = context.Connection.LocalIpAddress;
        copy.Connection.LocalPort = context.Connection.LocalPort;
        return copy;
    }

    /// <summary>
    /// Runs the rest of the pipeline with the response body intercepted. While it runs the forwarder must not
    /// splice past the cache, so the zero-copy feature is replaced by one that refuses.
    /// </summary>
    private static async Task<ResponseInterceptor> ForwardInterceptedAsync(HttpContext context, Func<Task> next,
        Func<HttpContext, (InterceptMode, CacheFill?)> decide)
    {
        var bodyFeature = context.Features.Get<IHttpResponseBodyFeature>()!;
        var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>();
        var interceptor = new ResponseInterceptor(context, bodyFeature, decide);
        context.Features.Set<IHttpResponseBodyFeature>(interceptor);
        if (zeroCopy is not null) context.Features.Set<IZeroCopyResponseFeature>(new NoSpliceFeature(zeroCopy));
        bool completed = false;
        try
        {
            await next();
            await interceptor.FinishAsync();
            completed = true;
        }
        finally
        {
            context.Features.Set(bodyFeature);
            if (zeroCopy is not null) context.Features.Set(zeroCopy);
            if (interceptor.Fill is { } fill)
            {
                bool whole = completed && context.Features.Get<IForwarderErrorFeature>() is null && !context.RequestAborted.IsCancellationRequested;
                if (whole) fill.Commit();
                fill.Dispose();
            }
        }
        return interceptor;
    }

    private (InterceptMode, CacheFill?) Decide(HttpContext context, string key, string status, bool allowFill, DateTimeOffset requestTime, bool background)
    {
        SetStatus(context, status, background);
        if (!allowFill) return (InterceptMode.Pass, null);
        var options = cache.Options;
        var response = context.Response;
        var why = Storability.WhyNot(context.Request, response.StatusCode, response.Headers, options.Statuses);
        if (why is not null)
        {
            LogNotStored(key, why);
            return (InterceptMode.Pass, null);
        }
        long? declared = response.ContentLength;
        if (declared > options.MaxEntrySize)
        {
            LogNotStored(key, $"Content-Length {declared} exceeds MaxEntrySize");
            return (InterceptMode.Pass, null);
        }
        if (!cache.HasFreeSpace(declared ?? 0))
        {
            cache.Evict();
            LogNotStored(key, "less than MinFreeDisk available");
            return (InterceptMode.Pass, null);
        }
        var head = StoredHead.From(context, key, requestTime, cache.Time.GetUtcNow(), declared ?? 0);
        var fill = CacheFill.Start(cache, head, declared);
        return fill is null ? (InterceptMode.Pass, null) : (InterceptMode.Fill, fill);
    }

    private OpenEntry? Lookup(string key, HttpRequest request)
    {
        foreach (var candidate in cache.Index.Candidates(key, vary => StoredHead.VaryMatches(vary, request)))
            if (cache.Open(candidate) is { } opened) return opened;
        return null;
    }

    /// <summary>§4.3.4: the 304's fields replace the stored ones; persisted by rewriting a copy of the file, renamed over it.</summary>
    private StoredResponse UpdateFromNotModified(OpenEntry entry, IHeaderDictionary notModified, DateTimeOffset requestTime, DateTimeOffset responseTime)
    {
        var replaced = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var fields = new List<(string, string)>();
        foreach (var (name, values) in notModified)
        {
            if (!StoredHead.IsStorable(name, notModified)) continue;
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

    private static OpenEntry Reopened(OpenEntry entry, StoredResponse updated)
        => new(entry.Entry, entry.File, updated, entry.BodyOffset, entry.Path);

    private void InvalidateAfterUnsafe(HttpContext context, string template)
    {
        int status = context.Response.StatusCode;
        if (status is < 200 or >= 400) return;
        var request = context.Request;
        var target = new Uri($"{request.Scheme}://{request.Host}{request.PathBase}{request.Path}{request.QueryString}");
        int removed = cache.Invalidate(CacheKey.For(template, target));
        foreach (var header in new[] { "Location", "Content-Location" })
        {
            var value = context.Response.Headers[header].ToString();
            // §4.4: only URIs with the same origin as the request, so one site cannot purge another's entries.
            if (value.Length > 0 && Uri.TryCreate(target, value, out var uri) && uri.Scheme == target.Scheme
                && string.Equals(uri.Authority, target.Authority, StringComparison.OrdinalIgnoreCase))
                removed += cache.Invalidate(CacheKey.For(template, uri));
        }
        if (removed > 0) LogInvalidated(request.Method, removed);
    }

    private static Dictionary<string, StringValues> StripConditionals(HttpRequest request)
    {
        var saved = new Dictionary<string, StringValues>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in new[] { "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range" })
            if (request.Headers.Remove(name, out var value)) saved[name] = value;
        return saved;
    }

    private static CacheControl RequestDirectives(HttpRequest request)
    {
        if (request.Headers.CacheControl.Count > 0) return CacheControl.Parse(request.Headers.CacheControl);
        // RFC 9111 §5.4: Pragma: no-cache counts only when there is no Cache-Control.
        return request.Headers.Pragma.Any(p => p?.Contains("no-cache", StringComparison.OrdinalIgnoreCase) == true)
            ? CacheControl.Parse("no-cache") : CacheControl.Empty;
    }

    private static Task GatewayTimeoutAsync(HttpContext context)
    {
        // §5.2.1.7: only-if-cached and nothing usable stored.
        context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        context.Response.ContentLength = 0;
        SetStatus(context, CacheStatus.Miss);
        return Task.CompletedTask;
    }

    private static bool IsSafe(string method) => HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Debug, Message = "not stored: {Key}: {Reason}")]
    private partial void LogNotStored(string key, string reason);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "background refresh of {Key} failed: {Error}")]
    private partial void LogRefreshFailed(string key, string error);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Error, Message = "updating the stored head of {Key} failed: {Error}")]
    private partial void LogUpdateFailed(string key, string error);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Debug, Message = "{Method} invalidated {Count} cache entries")]
    private partial void LogInvalidated(string method, int count);
}
