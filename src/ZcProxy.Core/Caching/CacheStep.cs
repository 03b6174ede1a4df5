using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using ZcProxy.Core.Caching.Peers;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Core.Caching;

/// <summary>
/// The first proxy-pipeline step on routes with Metadata "Cache": "on": RFC 9111 shared-cache semantics in
/// front of the forwarders. Hits never reach them; misses and validations pass through them with the response
/// body intercepted (teed into a fill, or swallowed when the cache answers instead).
/// </summary>
internal sealed partial class CacheStep(DiskCache cache, CachedResponseWriter writer, IHttpForwarder forwarder, PeerForwarder peers,
    IServiceProvider services, ILogger<CacheStep> log)
{
    private const string RefreshLockSuffix = "\n#refresh";

    public static void SetStatus(HttpContext context, string status, bool background = false)
    {
        context.Response.Headers[CacheStatus.HeaderName] = status;
        if (!background) CacheStatusFeature.Set(context, status);
    }

    public static bool IsEnabled(HttpContext context) => IsEnabled(context.Features.Get<IReverseProxyFeature>()?.Route.Config);

    /// <summary>The route caches (Metadata <c>"Cache": "on"</c>).</summary>
    public static bool IsEnabled(Yarp.ReverseProxy.Configuration.RouteConfig? route)
        => route?.Metadata is { } metadata && metadata.TryGetValue("Cache", out var value) && ConfigValidator.IsOn(value);

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
            if (CacheStatusFeature.Of(context) is { } status) cache.Metrics.CountRequest(status);
        }
    }

    private async Task HandleAsync(HttpContext context, Func<Task> next)
    {
        var request = context.Request;
        var options = cache.Options;
        // A request another node forwarded because this node owns its key: answered here, never forwarded again, and
        // the header goes no further (the origin does not see it).
        bool fromPeer = request.Headers.Remove(CachePeers.HeaderName);
        if (fromPeer) peers.CountReceived();
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
        if (CacheBypass.Applies(context))
        {
            // nginx proxy_cache_bypass: not answered from the cache, but the response is stored (under the key's lock, so
            // a concurrent miss waits for it instead of fetching too).
            bool mayFill = HttpMethods.IsGet(request.Method) && cache.Lock.TryAcquire(key) is null;
            bool replaced = false;
            try { replaced = await FetchAsync(context, next, key, CacheStatus.Bypass, allowFill: mayFill); }
            finally { if (mayFill) cache.Lock.Release(key, replaced); }
            return;
        }
        // nginx's slice: a Range request is answered from stored slices of the object, fetched as needed.
        if (options.SliceSize > 0 && !fromPeer && await TryAnswerFromSlicesAsync(context, key, options.SliceSize)) return;
        var requestCc = RequestDirectives(request);
        var entry = await LookupAsync(key, request);
        // Sharded across nodes: a miss goes to the key's owner, which fills from the origin (see Caching/Peers/).
        if (entry is null && !fromPeer && !requestCc.OnlyIfCached && await peers.TryForwardAsync(context, key)) return;
        if (entry is null && !requestCc.OnlyIfCached && HttpMethods.IsGet(request.Method))
        {
            var running = cache.Lock.TryAcquire(key);
            if (running is null)
            {
                bool stored = false;
                bool store = cache.MinUses.CountMiss(key, CacheMinUses.ForRoute(context));
                try { stored = await FetchAsync(context, next, key, CacheStatus.Miss, allowFill: store); }
                finally { cache.Lock.Release(key, stored); }
                return;
            }
            // Another request is fetching this key: wait for its entry (bounded), then answer from it.
            if (await cache.Lock.WaitAsync(running, options.LockTimeout, context.RequestAborted)) entry = await LookupAsync(key, request);
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
        var ignored = CacheIgnoreHeaders.ForRoute(context);
        var freshness = entry.Freshness(ignored, CacheValid.ForRoute(context).For(stored.Status));
        var responseCc = freshness.Directives;
        var age = freshness.AgeAt(cache.Time.GetUtcNow());
        var lifetime = freshness.Lifetime;
        bool fresh = lifetime > age;
        var staleness = age - lifetime;

        if (UsableWithoutValidation(requestCc, responseCc, age, lifetime))
        {
            await writer.WriteAsync(context, entry, fresh ? CacheStatus.Hit : CacheStatus.Stale, age);
            return;
        }
        if (requestCc.OnlyIfCached)
        {
            await GatewayTimeoutAsync(context);
            return;
        }
        // RFC 5861: serve stale while one refresh per key runs in the background. The lock being free is not enough: a
        // refresh may have ended between this request's lookup and here, replacing the entry it holds; refreshing
        // that one again would ask the origin twice.
        if (!fresh && !requestCc.NoCache && Freshness.MayServeStale(responseCc)
            && responseCc.StaleWhileRevalidate is { } window && staleness <= window)
        {
            if (cache.Lock.TryAcquire(key + RefreshLockSuffix) is null
                && (!cache.Index.IsCurrent(entry.Entry) || !StartBackgroundRefresh(context, key, entry.Entry)))
                cache.Lock.Release(key + RefreshLockSuffix, false);
            await writer.WriteAsync(context, entry, CacheStatus.Updating, age);
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

    /// <summary>
    /// Runs the rest of the pipeline with the response body intercepted. The interceptor tells the body sender whether
    /// it needs the bytes (a fill or a swallowed response), so a response that is only passed on may still be spliced.
    /// </summary>
    private static async Task<ResponseInterceptor> ForwardInterceptedAsync(HttpContext context, Func<Task> next,
        Func<HttpContext, (InterceptMode, CacheFill?)> decide)
    {
        var bodyFeature = context.Features.Get<IHttpResponseBodyFeature>()!;
        var interceptor = new ResponseInterceptor(context, bodyFeature, decide);
        context.Features.Set<IHttpResponseBodyFeature>(interceptor);
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
            if (interceptor.Fill is { } fill)
            {
                // A client that closes on the last byte of a Content-Length body may be seen gone before this runs: the
                // fill's own length check (Commit) proves that body whole. Without a length, only a client still there does.
                bool whole = completed && context.Features.Get<IForwarderErrorFeature>() is null
                    && (fill.HasDeclaredLength || !context.RequestAborted.IsCancellationRequested);
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
        bool hasRouteDefault = CacheValid.ForRoute(context).For(response.StatusCode) is not null;
        var why = Storability.WhyNot(context.Request, response.StatusCode, response.Headers, options.Statuses, CacheIgnoreHeaders.ForRoute(context), hasRouteDefault);
        if (why is not null)
        {
            LogNotStored(key, why);
            return (InterceptMode.Pass, null);
        }
        long? declared = response.ContentLength;
        if (declared > options.MaxEntrySize)
        {
            LogTooLargeToStore(key, declared.Value);
            return (InterceptMode.Pass, null);
        }
        if (!cache.HasFreeSpace(declared ?? 0))
        {
            cache.Evict();
            LogNotStored(key, "less than MinFreeDisk available");
            return (InterceptMode.Pass, null);
        }
        var head = StoredHead.From(context, key, requestTime, cache.Time.GetUtcNow(), declared ?? 0, CacheIgnoreHeaders.StoresCookies(context));
        var fill = CacheFill.Start(cache, head, declared);
        return fill is null ? (InterceptMode.Pass, null) : (InterceptMode.Fill, fill);
    }

    private async ValueTask<OpenEntry?> LookupAsync(string key, HttpRequest request)
    {
        foreach (var candidate in cache.Index.Candidates(key, static (vary, request) => StoredHead.VaryMatches(vary, request), request))
            if (await cache.OpenAsync(candidate) is { } opened) return opened;
        return null;
    }


    private void InvalidateAfterUnsafe(HttpContext context, string template)
    {
        int status = context.Response.StatusCode;
        if (status is < 200 or >= 400) return;
        var request = context.Request;
        int removed = cache.Invalidate(CacheKey.For(template, request, HttpMethods.Get));
        foreach (var header in new[] { "Location", "Content-Location" })
        {
            var value = context.Response.Headers[header].ToString();
            // §4.4: only URIs with the same origin as the request (ForReference returns null for others).
            if (value.Length > 0 && CacheKey.ForReference(template, request, value) is { } key) removed += cache.Invalidate(key);
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

    [LoggerMessage(EventId = 4014, Level = LogLevel.Debug, Message = "not stored: {Key}: Content-Length {Length} exceeds MaxEntrySize")]
    private partial void LogTooLargeToStore(string key, long length);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "background refresh of {Key} failed: {Error}")]
    private partial void LogRefreshFailed(string key, string error);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Error, Message = "updating the stored head of {Key} failed: {Error}")]
    private partial void LogUpdateFailed(string key, string error);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Debug, Message = "{Method} invalidated {Count} cache entries")]
    private partial void LogInvalidated(string method, int count);
}
