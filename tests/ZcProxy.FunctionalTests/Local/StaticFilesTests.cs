using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Hosting;
using ZcProxy.Tests.Infrastructure;
using ZcProxy.Tests.Transport;

namespace ZcProxy.Tests.Local;

/// <summary>Static files (route Metadata "Static"), on the zero-copy transport (sendfile / O_DIRECT) and on Kestrel's (copied).</summary>
public sealed class StaticFilesTests : IDisposable
{
    private static readonly HttpClient Client = new(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { Timeout = TimeSpan.FromSeconds(30) };
    private readonly ConfigDirectory _dir = new();

    private string Www => Path.Combine(_dir.Root, "www");

    public StaticFilesTests()
    {
        Directory.CreateDirectory(Path.Combine(Www, "docs", "empty"));
        File.WriteAllText(Path.Combine(Www, "index.html"), "<h1>home</h1>");
        File.WriteAllText(Path.Combine(Www, "docs", "a.txt"), "0123456789");
        File.WriteAllText(Path.Combine(Www, "docs", "style.css"), "body{}");
        File.WriteAllText(Path.Combine(Www, "docs", "index.htm"), "docs index");
        File.WriteAllText(Path.Combine(_dir.Root, "secret.txt"), "SECRET");
        File.CreateSymbolicLink(Path.Combine(Www, "escape.txt"), Path.Combine(_dir.Root, "secret.txt"));
        File.CreateSymbolicLink(Path.Combine(Www, "alias.txt"), Path.Combine(Www, "docs", "a.txt"));
        Directory.CreateSymbolicLink(Path.Combine(Www, "up"), _dir.Root);
    }

    public void Dispose() => _dir.Dispose();

    private Task<InProcessProxy> StartAsync(bool zeroCopy, string extraMetadata = "")
    {
        _dir.WriteMain($$"""
            { "Routes": { "www": { "Match": { "Path": "/{**rest}" }, "Metadata": { "Static": "{{Www}}"{{extraMetadata}} } } }, "Clusters": { } }
            """, $$""" "ZeroCopy": { "Enabled": {{(zeroCopy ? "true" : "false")}} }, "AccessLog": { "Path": "off" } """);
        return InProcessProxy.StartAsync(_dir.MainFile);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task File_WithValidators_Conditionals_Ranges_Head(bool zeroCopy)
    {
        await using var proxy = await StartAsync(zeroCopy);
        var url = proxy.Url + "/docs/a.txt";

        using var full = await Client.GetAsync(url);
        Assert.Equal(HttpStatusCode.OK, full.StatusCode);
        Assert.Equal("0123456789", await full.Content.ReadAsStringAsync());
        Assert.Equal("text/plain", full.Content.Headers.ContentType!.MediaType);
        Assert.Equal("bytes", full.Headers.AcceptRanges.Single());
        var etag = full.Headers.ETag!;
        var mtime = new DateTimeOffset(File.GetLastWriteTimeUtc(Path.Combine(Www, "docs", "a.txt")));
        Assert.Equal($"\"{mtime.ToUnixTimeSeconds():x}-a\"", etag.Tag);
        Assert.Equal(mtime.ToUnixTimeSeconds(), full.Content.Headers.LastModified!.Value.ToUnixTimeSeconds());

        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.IfNoneMatch.Add(etag);
            using var notModified = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
            Assert.Equal(etag, notModified.Headers.ETag);
        }
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.IfModifiedSince = full.Content.Headers.LastModified;
            Assert.Equal(HttpStatusCode.NotModified, (await Client.SendAsync(request)).StatusCode);
        }
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.IfMatch.Add(new EntityTagHeaderValue("\"other\""));
            Assert.Equal(HttpStatusCode.PreconditionFailed, (await Client.SendAsync(request)).StatusCode);
        }
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.Range = new RangeHeaderValue(2, 5);
            using var partial = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal("2345", await partial.Content.ReadAsStringAsync());
            Assert.Equal("bytes 2-5/10", partial.Content.Headers.ContentRange!.ToString());
        }
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.Range = new RangeHeaderValue(10, null);
            using var unsatisfiable = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, unsatisfiable.StatusCode);
            Assert.Equal("bytes */10", unsatisfiable.Content.Headers.ContentRange!.ToString());
        }
        using (var request = new HttpRequestMessage(HttpMethod.Head, url))
        {
            using var head = await Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(10, head.Content.Headers.ContentLength);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        using var css = await Client.GetAsync(proxy.Url + "/docs/style.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Directories_Index_Redirect_Forbidden_NotFound_Method(bool zeroCopy)
    {
        await using var proxy = await StartAsync(zeroCopy, """, "StaticIndex": "index.htm" """);
        File.WriteAllText(Path.Combine(Www, "index.htm"), "root index");

        Assert.Equal("root index", await Client.GetStringAsync(proxy.Url + "/"));
        Assert.Equal("docs index", await Client.GetStringAsync(proxy.Url + "/docs/"));
        using var redirect = await Client.GetAsync(proxy.Url + "/docs?x=1");
        Assert.Equal(HttpStatusCode.MovedPermanently, redirect.StatusCode);
        Assert.Equal("/docs/?x=1", redirect.Headers.Location!.OriginalString);
        Assert.Equal(HttpStatusCode.Forbidden, (await Client.GetAsync(proxy.Url + "/docs/empty/")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync(proxy.Url + "/docs/missing.txt")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await Client.GetAsync(proxy.Url + "/docs/a.txt/more")).StatusCode);
        using var post = await Client.PostAsync(proxy.Url + "/docs/a.txt", new StringContent("x"));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Equal("GET, HEAD", string.Join(", ", post.Content.Headers.Allow));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Traversal_IsImpossible_RawTargets_EncodedDotsAndSlashes_Symlinks(bool zeroCopy)
    {
        await using var proxy = await StartAsync(zeroCopy);
        var uri = new Uri(proxy.Url);
        async Task<string> GetOn(NetworkStream stream, string target)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
            return await DirectAnswerTests.ReadResponseAsync(stream);
        }
        // Each on its own connection: Kestrel itself answers some (an encoded NUL) with 400 and closes.
        foreach (var target in new[]
        {
            "/../secret.txt", "/docs/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/docs/%2e%2e/%2e%2e/secret.txt",
            "/..%2fsecret.txt", "/docs%2f..%2f..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/escape.txt", "/up/secret.txt",
            "/docs/a.txt%00.html", "/.%2e/secret.txt", "/%2e%2e", "//..//secret.txt",
        })
        {
            using var one = new TcpClient();
            await one.ConnectAsync(uri.Host, uri.Port);
            var response = await GetOn(one.GetStream(), target);
            Assert.DoesNotContain("SECRET", response);
            Assert.Matches(@"^HTTP/1\.1 (400|403|404) ", response);
        }
        using var socket = new TcpClient();
        await socket.ConnectAsync(uri.Host, uri.Port);
        Task<string> Get(string target) => GetOn(socket.GetStream(), target);
        // One connection that stays usable: a symlink that stays inside the root is served (also through one that leaves and comes back).
        var alias = await Get("/alias.txt");
        Assert.StartsWith("HTTP/1.1 200 ", alias);
        Assert.EndsWith("0123456789", alias);
        Assert.StartsWith("HTTP/1.1 200 ", await Get("/up/www/docs/a.txt"));
        Assert.StartsWith("HTTP/1.1 403 ", await Get("/escape.txt"));
        Assert.StartsWith("HTTP/1.1 400 ", await Get("/%2e%2e/secret.txt"));
        Assert.StartsWith("HTTP/1.1 404 ", await Get("/docs%2fa.txt"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task LargeFile_ShaExact_CountedByMechanism_KeepAlive(bool zeroCopy)
    {
        const long Size = 3 << 20;
        var path = BodyPattern.WriteFile(Www, Size);
        // A 1 MiB threshold: "threshold" reads this file with O_DIRECT, as the cache reads a large entry.
        await using var proxy = await StartAsync(zeroCopy, """, "StaticDirectIo": "threshold", "StaticDirectIoThreshold": "1MiB" """);
        var metrics = proxy.Get<ProxyMetrics>();
        using var client = await RawHttpClient.ConnectAsync(new Uri(proxy.Url));

        await client.SendAsync(RawHttpClient.Get("/" + Path.GetFileName(path)));
        var response = await client.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        Assert.Equal(BodyPattern.Sha256(Size), response.Sha);
        // O_DIRECT reads count as "directio" whether the aligned buffers go to the socket (zero copy) or are copied.
        await CounterAssert.BodyBytesAsync(metrics, BodyMechanism.DirectIo, Size);

        await client.SendAsync(RawHttpClient.Get("/docs/a.txt"));
        var small = await client.ReadResponseAsync();
        Assert.Equal(200, small.Status);
        Assert.Equal(10, small.BodyLength);
        // Below FileRangeSource.SendfileFrom a file is read and sent with the head (one write), on both paths.
        await CounterAssert.BodyBytesAsync(metrics, BodyMechanism.Copy, 10);
    }

    [Fact]
    public async Task Check_RejectsBadStaticSettings()
    {
        _dir.WriteMain($$"""
            { "Routes": {
                "a": { "Match": { "Path": "/a" }, "Metadata": { "Static": "relative/www" } },
                "b": { "Match": { "Path": "/b" }, "Metadata": { "Static": "{{Www}}/missing" } },
                "c": { "Match": { "Path": "/c" }, "Metadata": { "Static": "{{Www}}", "StaticIndex": "../x" } },
                "d": { "Match": { "Path": "/d" }, "Metadata": { "Static": "{{Www}}", "Return": "200 ok" } },
                "e": { "Match": { "Path": "/e" }, "Metadata": { "Static": "{{Www}}", "StaticDirectIo": "sometimes" } }
              }, "Clusters": { } }
            """);

        var (config, errors) = await ProxyServices.LoadAndValidateAsync(_dir.MainFile);

        Assert.Null(config);
        var text = string.Join("\n", errors.Select(e => e.ToString()));
        Assert.Contains("$.ReverseProxy.Routes.a.Metadata.Static: 'relative/www' must be an absolute directory path", text);
        Assert.Contains("$.ReverseProxy.Routes.b.Metadata.Static: the directory '", text);
        Assert.Contains("$.ReverseProxy.Routes.c.Metadata.StaticIndex: '../x' must be a file name", text);
        Assert.Contains("$.ReverseProxy.Routes.d.Metadata.Static: a route either serves files or answers with 'Return'", text);
        Assert.Contains("$.ReverseProxy.Routes.e.Metadata.StaticDirectIo: 'sometimes' is not", text);
        Assert.Equal(5, errors.Count);
    }

    /// <summary>
    /// Static files are opened by the rule cache entries are (Output/LoopFileIo): on an event loop a path that does not
    /// resolve from the kernel's dentry cache (a name never looked up: the same rule that keeps a cold directory block's
    /// read off the loop) is opened on the thread pool, so the loop's other connections never wait for the disk. Seen by
    /// LoopFileIo's OpenedOnPool hook (a completed ServeAsync cannot tell: on a busy machine the pool's open can finish
    /// before the loop's await looks at it). Only ZcProxy's transport has event loops, so one path.
    /// </summary>
    [Fact]
    public async Task OnAnEventLoop_AnUncachedPath_IsOpenedOnThePool()
    {
        await using var proxy = await StartAsync(zeroCopy: true);
        var files = proxy.Get<ZcProxy.Core.Local.StaticFiles>();
        var route = ZcProxy.Core.Local.StaticRoute.Parse(new Dictionary<string, string> { ["Static"] = Www }, [])!;
        var loop = proxy.Get<ZcProxy.Core.Transport.Loops.EventLoops>().All[0];

        async Task<(bool Inline, int Status)> ServeOnLoopAsync(string path)
        {
            var context = new Microsoft.AspNetCore.Http.DefaultHttpContext();
            context.Request.Method = "GET";
            context.Request.Path = path;
            context.Response.Body = new MemoryStream();
            var started = new TaskCompletionSource<(bool, Task)>(TaskCreationOptions.RunContinuationsAsynchronously);
            loop.Post(_ =>
            {
                var serve = files.ServeAsync(context, route);
                started.SetResult((serve.IsCompleted, serve));
            }, null);
            var (inline, serving) = await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
            await serving.WaitAsync(TimeSpan.FromSeconds(10));
            return (inline, context.Response.StatusCode);
        }

        var missing = $"/docs/never-looked-up-{Guid.NewGuid():N}.txt";
        var onPool = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Record(string path) { if (path.EndsWith(missing, StringComparison.Ordinal)) onPool.Enqueue(path); }
        ZcProxy.Core.Output.LoopFileIo.OpenedOnPool += Record;
        try
        {
            Assert.Equal(404, (await ServeOnLoopAsync(missing)).Status);
            Assert.Single(onPool);
            Assert.Equal((true, 404), await ServeOnLoopAsync(missing)); // the look-up is cached now: inline, same answer
            Assert.Single(onPool);
        }
        finally
        {
            ZcProxy.Core.Output.LoopFileIo.OpenedOnPool -= Record;
        }
    }
}
