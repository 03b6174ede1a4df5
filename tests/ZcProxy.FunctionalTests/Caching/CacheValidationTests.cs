using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Caching;

/// <summary>RFC 9111 §4.3 validation, §4.1 Vary, §4.4 invalidation, stale-while-revalidate / stale-if-error, client conditionals.</summary>
public class CacheValidationTests
{
    [Fact]
    public async Task StaleWithETag_Conditional304_UpdatesStoredHeaders_ThenFresh()
    {
        int n = 0;
        var conditionals = new ConcurrentQueue<string>();
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            int i = Interlocked.Increment(ref n);
            conditionals.Enqueue(c.Request.Headers.IfNoneMatch.ToString());
            c.Response.Headers.ETag = "\"v1\"";
            c.Response.Headers["X-Version"] = i.ToString();
            if (i == 1) { c.Response.Headers.CacheControl = "max-age=0"; return Task.CompletedTask.ContinueWith(_ => c.Response.WriteAsync("original body")).Unwrap(); }
            c.Response.StatusCode = 304;
            c.Response.Headers.CacheControl = "max-age=60";
            return Task.CompletedTask;
        }));
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        var revalidated = await rig.SendAsync("/r");
        Assert.Equal("REVALIDATED", CacheRig.CacheStatusOf(revalidated));
        Assert.Equal(200, (int)revalidated.StatusCode);
        Assert.Equal("original body", await revalidated.Content.ReadAsStringAsync());
        Assert.Equal("2", revalidated.Headers.GetValues("X-Version").Single());
        Assert.Equal(["", "\"v1\""], conditionals.ToArray());

        var hit = await rig.SendAsync("/r");
        Assert.Equal("HIT", CacheRig.CacheStatusOf(hit));
        Assert.Equal("2", hit.Headers.GetValues("X-Version").Single());
        Assert.Equal("original body", await hit.Content.ReadAsStringAsync());
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task StaleWithLastModified_SendsIfModifiedSince_NewBodyReplacesEntry()
    {
        int n = 0;
        var seen = new ConcurrentQueue<string>();
        var lastModified = DateTimeOffset.UtcNow.AddDays(-1).ToString("r");
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            seen.Enqueue(c.Request.Headers.IfModifiedSince.ToString());
            c.Response.Headers.LastModified = lastModified;
            c.Response.Headers.CacheControl = Interlocked.Increment(ref n) == 1 ? "max-age=0" : "max-age=60";
            return $"v{n}";
        }));
        await rig.GetAsync("/r");
        Assert.Equal(("EXPIRED", "v2"), await rig.GetAsync("/r"));
        Assert.Equal(lastModified, seen.Last());
        Assert.Equal(("HIT", "v2"), await rig.GetAsync("/r"));
    }

    [Fact]
    public async Task ClientConditionals_AnsweredFromCache()
    {
        var lastModified = DateTimeOffset.UtcNow.AddDays(-1);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            c.Response.Headers.ETag = "\"abc\"";
            c.Response.Headers.LastModified = lastModified.ToString("r");
            return "body";
        }));
        await rig.GetAsync("/r");
        var inm = await rig.SendAsync("/r", r => r.Headers.TryAddWithoutValidation("If-None-Match", "W/\"abc\""));
        Assert.Equal(304, (int)inm.StatusCode);
        Assert.Equal("\"abc\"", inm.Headers.ETag?.ToString());
        var ims = await rig.SendAsync("/r", r => r.Headers.IfModifiedSince = lastModified.AddHours(1));
        Assert.Equal(304, (int)ims.StatusCode);
        var other = await rig.SendAsync("/r", r => r.Headers.TryAddWithoutValidation("If-None-Match", "\"zzz\""));
        Assert.Equal(200, (int)other.StatusCode);
        var ifMatch = await rig.SendAsync("/r", r => r.Headers.TryAddWithoutValidation("If-Match", "\"zzz\""));
        Assert.Equal(412, (int)ifMatch.StatusCode);
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Fact]
    public async Task Vary_KeepsSeveralVariants()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            c.Response.Headers.Vary = "Accept-Language";
            return "lang=" + c.Request.Headers.AcceptLanguage;
        }));
        void En(HttpRequestMessage r) => r.Headers.Add("Accept-Language", "en");
        void Fr(HttpRequestMessage r) => r.Headers.Add("Accept-Language", "fr");
        Assert.Equal(("MISS", "lang=en"), await rig.GetAsync("/r", En));
        Assert.Equal(("MISS", "lang=fr"), await rig.GetAsync("/r", Fr));
        Assert.Equal(("HIT", "lang=en"), await rig.GetAsync("/r", En));
        Assert.Equal(("HIT", "lang=fr"), await rig.GetAsync("/r", Fr));
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status);
        Assert.Equal(3, rig.Origin.Requests);
    }

    [Fact]
    public async Task UnsafeMethod_InvalidatesUri_Location_ContentLocation()
    {
        await using var rig = await CacheRig.StartAsync(app =>
        {
            app.MapGet("/{name}", (HttpContext c, string name) => { c.Response.Headers.CacheControl = "max-age=60"; return name; });
            app.MapPost("/a", (HttpContext c) =>
            {
                c.Response.Headers.Location = "/b";
                c.Response.Headers.ContentLocation = "http://" + c.Request.Host + "/c";
                return "posted";
            });
            app.MapPost("/fail", () => Results.StatusCode(500));
        });
        foreach (var p in new[] { "/a", "/b", "/c", "/d" }) await rig.GetAsync(p);
        await rig.SendAsync("/fail", method: HttpMethod.Post);
        Assert.Equal("HIT", (await rig.GetAsync("/a")).Status); // an error response invalidates nothing

        await rig.SendAsync("/a", method: HttpMethod.Post);
        Assert.Equal("MISS", (await rig.GetAsync("/a")).Status);
        Assert.Equal("MISS", (await rig.GetAsync("/b")).Status);
        Assert.Equal("HIT", (await rig.GetAsync("/d")).Status);
    }

    [Fact]
    public async Task StaleIfError_ServesStale_MustRevalidateDoesNot()
    {
        int n = 0;
        await using var rig = await CacheRig.StartAsync(app =>
        {
            app.MapGet("/sie", (HttpContext c) =>
            {
                if (Interlocked.Increment(ref n) > 1) return Results.StatusCode(503);
                c.Response.Headers.CacheControl = "max-age=1, stale-if-error=600";
                c.Response.Headers.Age = "5";
                return Results.Text("old");
            });
            app.MapGet("/mr", (HttpContext c) =>
            {
                if (c.Request.Headers.ContainsKey("X-Fail")) return Results.StatusCode(503);
                c.Response.Headers.CacheControl = "max-age=1, must-revalidate, stale-if-error=600";
                c.Response.Headers.Age = "5";
                return Results.Text("old");
            });
        });
        await rig.GetAsync("/sie");
        Assert.Equal(("STALE", "old"), await rig.GetAsync("/sie"));

        await rig.GetAsync("/mr");
        var r = await rig.SendAsync("/mr", m => m.Headers.Add("X-Fail", "1"));
        Assert.Equal(503, (int)r.StatusCode);
        Assert.Equal("EXPIRED", CacheRig.CacheStatusOf(r));
    }

    [Fact]
    public async Task StaleIfError_WhenOriginIsDown()
    {
        var gate = new ConcurrentQueue<int>();
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=1, stale-if-error=600";
            c.Response.Headers.Age = "5";
            return "old";
        }));
        await rig.GetAsync("/r");
        await rig.Origin.DisposeAsync(); // connection refused from now on
        Assert.Equal(("STALE", "old"), await rig.GetAsync("/r"));
    }

    [Fact]
    public async Task StaleWhileRevalidate_ServesStaleThenRefreshes()
    {
        int n = 0;
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            if (Interlocked.Increment(ref n) == 1)
            {
                c.Response.Headers.CacheControl = "max-age=1, stale-while-revalidate=600";
                c.Response.Headers.Age = "5";
                return "v1";
            }
            c.Response.Headers.CacheControl = "max-age=600";
            return "v2";
        }));
        await rig.GetAsync("/r");
        Assert.Equal(("UPDATING", "v1"), await rig.GetAsync("/r"));
        await Poll.UntilAsync(async () => (await rig.GetAsync("/r")) == ("HIT", "v2"), "the refreshed entry");
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task StaleWhileRevalidate_RefreshDoesNotHoldUpTheClientsConnection()
    {
        int n = 0;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", async (HttpContext c) =>
        {
            if (Interlocked.Increment(ref n) == 1)
            {
                c.Response.Headers.CacheControl = "max-age=1, stale-while-revalidate=600";
                c.Response.Headers.Age = "5";
                await c.Response.WriteAsync("v1");
                return;
            }
            await gate.Task; // the refresh is slow
            c.Response.Headers.CacheControl = "max-age=600";
            await c.Response.WriteAsync("v2");
        }));
        await rig.GetAsync("/r");
        Assert.Equal(("UPDATING", "v1"), await rig.GetAsync("/r"));
        await Poll.UntilAsync(() => rig.Origin.Requests == 2, "the refresh at the origin");
        // Same client, same keep-alive connection: answered stale while the refresh is still waiting; no second refresh.
        Assert.Equal(("UPDATING", "v1"), await rig.GetAsync("/r"));
        Assert.Equal(2, rig.Origin.Requests);
        gate.SetResult();
        await Poll.UntilAsync(async () => (await rig.GetAsync("/r")) == ("HIT", "v2"), "the refreshed entry");
    }

    [Fact]
    public async Task Head_AnsweredFromStoredGet()
    {
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            return "twelve bytes";
        }));
        await rig.GetAsync("/r");
        var head = await rig.SendAsync("/r", method: HttpMethod.Head);
        Assert.Equal("HIT", CacheRig.CacheStatusOf(head));
        Assert.Equal(12, head.Content.Headers.ContentLength);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        Assert.Equal(1, rig.Origin.Requests);
    }

    [Fact]
    public async Task HeadOnStaleEntry_200Freshens_OrInvalidatesWhenTheRepresentationChanged()
    {
        int n = 0;
        string etag = "\"a\"";
        await using var rig = await CacheRig.StartAsync(app => app.MapMethods("/r", ["GET", "HEAD"], (HttpContext c) =>
        {
            c.Response.Headers.ETag = etag;
            c.Response.Headers.CacheControl = Interlocked.Increment(ref n) == 1 ? "max-age=0" : "max-age=600";
            c.Response.ContentLength = 4;
            return HttpMethods.IsHead(c.Request.Method) ? Task.CompletedTask : c.Response.WriteAsync("body");
        }));
        await rig.GetAsync("/r");
        var head = await rig.SendAsync("/r", method: HttpMethod.Head);
        Assert.Equal("EXPIRED", CacheRig.CacheStatusOf(head));
        Assert.Equal(("HIT", "body"), await rig.GetAsync("/r")); // freshened by the HEAD's max-age=600

        etag = "\"b\"";
        // no-cache makes the HEAD go to the origin although the entry is fresh.
        await CacheRig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, rig.Proxy.Url + "/r") { Headers = { { "Cache-Control", "no-cache" } } });
        Assert.Equal("MISS", (await rig.GetAsync("/r")).Status); // a different ETag: the stored GET was invalidated
    }

    [Fact]
    public async Task Range_FromCompleteEntry_206_416_AndIfRange()
    {
        var body = CacheRig.RandomBody(10_000, 7);
        await using var rig = await CacheRig.StartAsync(app => app.MapGet("/r", (HttpContext c) =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            c.Response.Headers.ETag = "\"e\"";
            return Results.Bytes(body);
        }));
        await rig.GetAsync("/r");
        var part = await rig.SendAsync("/r", r => r.Headers.Range = new(100, 4099));
        Assert.Equal(206, (int)part.StatusCode);
        Assert.Equal("bytes 100-4099/10000", part.Content.Headers.ContentRange?.ToString());
        Assert.Equal(body[100..4100], await part.Content.ReadAsByteArrayAsync());
        var suffix = await rig.SendAsync("/r", r => r.Headers.TryAddWithoutValidation("Range", "bytes=-10"));
        Assert.Equal(body[^10..], await suffix.Content.ReadAsByteArrayAsync());
        var beyond = await rig.SendAsync("/r", r => r.Headers.TryAddWithoutValidation("Range", "bytes=20000-"));
        Assert.Equal(416, (int)beyond.StatusCode);
        var ifRange = await rig.SendAsync("/r", r => { r.Headers.Range = new(0, 9); r.Headers.TryAddWithoutValidation("If-Range", "\"other\""); });
        Assert.Equal(200, (int)ifRange.StatusCode);
        Assert.Equal(1, rig.Origin.Requests);
    }
}
