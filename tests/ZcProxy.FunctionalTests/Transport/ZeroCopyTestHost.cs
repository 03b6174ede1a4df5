using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ZcProxy.Core;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Output;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;
using ZcProxy.Native;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A small Kestrel app on 127.0.0.1:0 with the zero-copy transport, sending bodies through ResponseBodySender
/// (SpliceThreshold 0, so every socket body may be spliced):
///   /file?size=N          a FileRangeSource of an N-byte pattern file (Content-Length N)
///   /file-short?size=N&amp;promise=M  a FileRangeSource promising M bytes of an N-byte file
///   /splice?size=N[&amp;send=M][&amp;end=Close|Reset|StayOpen][&amp;idleMs=T][&amp;onLoop=true]  a SocketBody of N promised
///                         bytes from a socket source sending M, each wait bounded by T ms; onLoop: sent from the
///                         connection's event loop thread; head: the source sends a response head first (SocketSource.Head),
///                         read as the forwarder does, so the body bytes that come with it are the body's prefix
///   /status/{code}        a file body on a 204/304 (headers only)
///   /direct?size=N[&amp;offset=O][&amp;count=C][&amp;promise=P][&amp;started=true]  a DirectFileSource of C bytes (default N-O)
///                         from O of the N-byte file, promising P bytes (default C); started: after Response.StartAsync
///                         (no hole possible: the copy loop)
///   /file-nolength, /file-started  a file body without Content-Length, or after the head was sent: copied
///   /guard?size=N         opens a hole and advances one byte short: the guard must trip
///   /file-token?size=N    a file body as a hole opened by hand, recording the token its move got (MoveTokens)
///   /file-frames?size=N   a file body through the sender whose move records the async frames between it and this
///                         handler (HoleFrames)
///   /file-token-late?size=N  a file body as a hole opened by hand with a token of its own, which its move cancels after
///                         sending the body, recording whether the move's token saw it before and after one wait (LateLinks)
///   /empty-flush-behind-interim  an interim head the client does not read (it holds the send gate), then an empty
///                         flush: records whether the interim was pending and the flush completed at once (EmptyFlushes)
///   POST /unread?expect=N reads no body; X-Kernel-Queued: bytes still in the socket's receive queue
///   /until-aborted        ends (recorded Complete) when RequestAborted fires: the client hung up while nothing was read
///   /file-then-hangup?size=N  a file body as a hole whose move, once every byte is sent, waits for the client to hang up
///                         (RequestAborted) before it returns: the client's FIN overtakes the rest of the response's flush
/// The handlers record the sender's result so tests can check how the transfer ended.
/// </summary>
internal sealed class ZeroCopyTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private ZeroCopyTestHost(WebApplication app, string directory, SocketSource source)
    {
        _app = app;
        _directory = directory;
        Source = source;
    }

    public SocketSource Source { get; }
    public Uri BaseAddress { get; private set; } = null!;
    public ProxyMetrics Metrics => _app.Services.GetRequiredService<ProxyMetrics>();
    public ZeroCopyTransport Transport => _app.Services.GetRequiredService<ZeroCopyTransport>();
    /// <summary>Connections the own HTTP/1.1 layer handed to Kestrel's (0 without <c>ownHttp1</c>).</summary>
    public long Http1HandedOver => _app.Services.GetService<ZcProxy.Core.Transport.Http1.Http1ApplicationHolder>()?.HandedOver ?? 0;
    public ZcProxy.Core.Transport.Loops.EventLoops Loops => _app.Services.GetRequiredService<ZcProxy.Core.Transport.Loops.EventLoops>();
    private ResponseBodySender Sender => _app.Services.GetRequiredService<ResponseBodySender>();
    /// <summary>Each handler's end: how its body transfer ended.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(string Path, BodyResult Result)> Outcomes { get; } = new();
    /// <summary>Per splice handler: whether it went on on its connection's event loop after the body (not on a pool thread).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<bool> SpliceEndedOnLoop { get; } = new();
    /// <summary>The tokens the /file-token handler's moves were given, in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<CancellationToken> MoveTokens { get; } = new();
    /// <summary>Per /file-token-late: whether the move's token was cancelled right after the hole's was, and after the move's first wait.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(bool BeforeWait, bool AfterWait)> LateLinks { get; } = new();
    /// <summary>Per /file-frames: the async state machines (MoveNext frames of ZcProxy.Core) on the stack when the hole's move ran.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string[]> HoleFrames { get; } = new();
    /// <summary>Per /empty-flush-behind-interim: whether the interim head was still being sent, and whether the empty flush completed at once.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(bool InterimPending, bool FlushCompleted)> EmptyFlushes { get; } = new();
    /// <summary>Runs inside the splice handler once the upstream socket is connected (tests use it to act mid-body).</summary>
    public Func<HttpContext, Task>? BeforeBody { get; set; }

    /// <param name="beforeHttp">Runs on each accepted connection before Kestrel's HTTP handling reads anything (tests hold it back).</param>
    /// <param name="listener">Adds connection middleware to the listener (as ProxyHost does to proxy listeners).</param>
    /// <param name="ownHttp1">ZcProxy's own HTTP/1.1 layer serves the requests (ZeroCopy.Http1 "own"), with Kestrel's as its fallback.</param>
    public static async Task<ZeroCopyTestHost> StartAsync(Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols? protocols = null,
        Func<Microsoft.AspNetCore.Connections.ConnectionContext, Task>? beforeHttp = null,
        Action<Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions>? listener = null, bool ownHttp1 = false)
    {
        var directory = Directory.CreateTempSubdirectory("zc-transport-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(new RuntimeOptions(new ZcProxyOptions { ZeroCopy = new ZeroCopyOptions { SpliceThreshold = 0 } }));
        builder.Services.AddZeroCopyTransport();
        builder.Services.AddResponseOutput();
        var http1 = ownHttp1 ? new ZcProxy.Core.Transport.Http1.Http1ApplicationHolder() : null;
        builder.WebHost.ConfigureKestrel(k => k.ListenZeroCopy(IPAddress.Loopback, 0, lo =>
        {
            if (protocols is { } p) lo.Protocols = p;
            listener?.Invoke(lo);
            if (beforeHttp is not null) lo.Use(next => async connection =>
            {
                await beforeHttp(connection);
                await next(connection);
            });
            if (http1 is not null) ZcProxy.Core.Transport.Http1.Http1Extensions.UseOwnHttp1(lo, http1);
        }));
        if (http1 is not null) ZcProxy.Core.Transport.Http1.CapturingServer.Register(builder.Services, http1);
        var app = builder.Build();
        var host = new ZeroCopyTestHost(app, directory, new SocketSource());
        app.UseZeroCopyResponses();
        app.MapGet("/file", host.FileAsync);
        app.MapGet("/file-short", host.FileShortAsync);
        app.MapGet("/splice", host.SpliceAsync);
        app.MapMethods("/status/{code:int}", ["GET", "HEAD"], host.StatusAsync);
        app.MapGet("/guard", host.GuardAsync);
        app.MapGet("/file-token", host.FileTokenAsync);
        app.MapGet("/file-token-late", host.FileTokenLateAsync);
        app.MapGet("/file-frames", host.FileFramesAsync);
        app.MapGet("/empty-flush-behind-interim", host.EmptyFlushBehindInterimAsync);
        app.MapGet("/direct", host.DirectAsync);
        app.MapGet("/file-nolength", host.FileWithoutLengthAsync);
        app.MapGet("/file-started", host.FileAfterStartAsync);
        app.MapPost("/unread", host.UnreadAsync);
        app.MapGet("/until-aborted", host.UntilAbortedAsync);
        app.MapGet("/file-then-hangup", host.FileThenHangUpAsync);
        await app.StartAsync();
        host.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return host;
    }

    public string PatternFile(long size)
    {
        var path = Path.Combine(_directory, $"body-{size}.bin");
        lock (_directory) if (!File.Exists(path)) BodyPattern.WriteFile(_directory, size);
        return path;
    }

    private Task FileAsync(HttpContext context, long size) => SendFileRangeAsync(context, size, size, contentLength: true);

    private Task FileShortAsync(HttpContext context, long size, long promise) => SendFileRangeAsync(context, size, promise, contentLength: true);

    /// <summary>No Content-Length: Kestrel frames the body chunked, so no hole: the copy loop sends it.</summary>
    private Task FileWithoutLengthAsync(HttpContext context, long size) => SendFileRangeAsync(context, size, size, contentLength: false);

    /// <summary>The head was already sent: no hole any more, the copy loop sends the body.</summary>
    private async Task FileAfterStartAsync(HttpContext context, long size)
    {
        context.Response.ContentLength = size;
        await context.Response.StartAsync();
        await SendFileRangeAsync(context, size, size, contentLength: true);
    }

    private async Task SendFileRangeAsync(HttpContext context, long size, long promise, bool contentLength)
    {
        using var file = File.OpenHandle(PatternFile(size));
        if (contentLength && !context.Response.HasStarted) context.Response.ContentLength = promise;
        await using var source = new FileRangeSource(file, 0, promise);
        Record(context, await Sender.SendAsync(context, source));
    }

    private async Task DirectAsync(HttpContext context, long size, long? offset, long? count, long? promise, bool? started)
    {
        var file = ZcProxy.Native.Syscalls.Open(PatternFile(size), ZcProxy.Native.LinuxConstants.O_RDONLY | ZcProxy.Native.LinuxConstants.O_DIRECT);
        long from = offset ?? 0, length = promise ?? count ?? size - from;
        context.Response.ContentLength = length;
        if (started == true) await context.Response.StartAsync();
        await using var source = new DirectFileSource(file, from, length);
        Record(context, await Sender.SendAsync(context, source));
    }

    private async Task SpliceAsync(HttpContext context, long size, long? send, SocketSource.End? end, int? idleMs, bool? onLoop, bool? head)
    {
        using var upstream = new UpstreamConnection(await Source.ConnectAsync(send ?? size, end ?? SocketSource.End.Close), "test-source");
        if (head == true) await upstream.ReadResponseHeadAsync(false, ResponseHeadLimits.Default, context.RequestAborted); // the body's start comes with it
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        if (onLoop == true) await connection.Loop.SwitchTo(); // as the forwarder runs, with its upstream on the loop
        if (BeforeBody is { } before) await before(context);
        context.Response.ContentLength = size;
        var idle = idleMs is { } ms ? TimeSpan.FromMilliseconds(ms) : Timeout.InfiniteTimeSpan;
        await using var source = new SocketBody(upstream, size, idle, context.RequestAborted);
        var result = await Sender.SendAsync(context, source);
        SpliceEndedOnLoop.Enqueue(connection.Loop.IsLoopThread);
        Record(context, result);
    }

    private async Task StatusAsync(HttpContext context, int code)
    {
        using var file = File.OpenHandle(PatternFile(1000));
        context.Response.StatusCode = code;
        if (code != 204) context.Response.ContentLength = 1000;
        await using var source = new FileRangeSource(file, 0, 1000);
        Record(context, await Sender.SendAsync(context, source));
    }

    /// <summary>A file body as a hole opened by hand (as ZeroCopyResponse does), recording the token its move is given.</summary>
    private Task FileTokenAsync(HttpContext context, long size) => HandMadeHoleAsync(context, size, advance: size, recordToken: true);

    /// <summary>A file body through the sender, whose move records the async frames between it and this handler (HoleFrames).</summary>
    private async Task FileFramesAsync(HttpContext context, long size)
    {
        using var file = File.OpenHandle(PatternFile(size));
        context.Response.ContentLength = size;
        await using var source = new FramesRecordingSource(new FileRangeSource(file, 0, size), HoleFrames);
        Record(context, await Sender.SendAsync(context, source));
    }

    /// <summary>A body source whose move first records the async frames it was called from (up to the handler's).</summary>
    private sealed class FramesRecordingSource(BodySource inner, System.Collections.Concurrent.ConcurrentQueue<string[]> frames) : BodySource
    {
        public override long Length => inner.Length;
        public override BodyMechanism? Hole => inner.Hole;
        public override ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken) => inner.ReadAsync(cancellationToken);

        public override ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
        {
            frames.Enqueue(ZcProxy.Tests.Infrastructure.AsyncFrames.OfCore(typeof(FramesRecordingSource).Assembly, skipFrames: 1)); // from the sender, up to the handler
            return inner.MoveAsync(to, pipe, cancellationToken);
        }

        public override ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    /// <summary>
    /// A file body as a hole opened by hand with a token of this handler's own: the move sends the body, cancels that
    /// token, and records whether its own token is cancelled then, and after one wait (a delay: the move is pending).
    /// </summary>
    private async Task FileTokenLateAsync(HttpContext context, long size)
    {
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        using var file = File.OpenHandle(PatternFile(size));
        await using var source = new FileRangeSource(file, 0, size);
        using var holeCancel = new CancellationTokenSource();
        context.Response.ContentLength = size;
        await context.Response.StartAsync();
        connection.Output.BeginHole(async token =>
        {
            var moved = await source.MoveAsync(connection, null, token);
            await holeCancel.CancelAsync();
            bool beforeWait = token.IsCancellationRequested;
            await Task.Delay(1, CancellationToken.None);
            LateLinks.Enqueue((beforeWait, token.IsCancellationRequested));
            return moved;
        }, size, holeCancel.Token);
        context.Response.BodyWriter.GetMemory();
        context.Response.BodyWriter.Advance((int)size);
        await context.Response.BodyWriter.FlushAsync(CancellationToken.None);
        Record(context, connection.Output.EndHole());
    }

    /// <summary>
    /// An interim head larger than the socket buffers to a client that reads nothing: its send waits, holding the send
    /// gate. An empty flush meanwhile has nothing of its caller's to send. Then the connection is aborted.
    /// </summary>
    private async Task EmptyFlushBehindInterimAsync(HttpContext context)
    {
        var output = context.Features.Get<ZeroCopyConnection>()!.Output;
        var interim = output.SendInterimAsync(new byte[64 << 20], CancellationToken.None);
        bool interimPending = !interim.IsCompleted;
        var flush = output.FlushAsync(CancellationToken.None);
        EmptyFlushes.Enqueue((interimPending, flush.IsCompleted));
        context.Abort();
        await flush;
        await interim;
        Record(context, BodyResult.Complete);
    }

    /// <summary>Opens a hole by hand and advances one byte less than it promised: Kestrel's count and ours disagree.</summary>
    private Task GuardAsync(HttpContext context, long size) => HandMadeHoleAsync(context, size, advance: size - 1, recordToken: false);

    /// <summary>A hole of <paramref name="size"/> file bytes opened by hand, of which Kestrel is told <paramref name="advance"/> passed.</summary>
    private async Task HandMadeHoleAsync(HttpContext context, long size, long advance, bool recordToken)
    {
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        using var file = File.OpenHandle(PatternFile(size));
        await using var source = new FileRangeSource(file, 0, size);
        context.Response.ContentLength = size;
        await context.Response.StartAsync();
        connection.Output.BeginHole(token =>
        {
            if (recordToken) MoveTokens.Enqueue(token);
            return source.MoveAsync(connection, null, token);
        }, size, context.RequestAborted);
        context.Response.BodyWriter.GetMemory();
        context.Response.BodyWriter.Advance((int)advance);
        await context.Response.BodyWriter.FlushAsync();
        Record(context, connection.Output.EndHole());
    }

    /// <summary>
    /// The whole body as a hole, as <see cref="ResponseBodySender"/> sends it, but the move returns only once the client,
    /// having read the body, hung up: what a loaded machine does when the client's FIN is handled before the loop gets
    /// back from the last sendfile or splice.
    /// </summary>
    private async Task FileThenHangUpAsync(HttpContext context, long size)
    {
        var zeroCopy = context.Find<ZeroCopyResponse>()!;
        using var file = File.OpenHandle(PatternFile(size));
        await using var source = new FileRangeSource(file, 0, size);
        context.Response.ContentLength = size;
        var result = await zeroCopy.SendHoleAsync(async token =>
        {
            var moved = await source.MoveAsync(zeroCopy.Connection, null, token);
            var hungUp = new TaskCompletionSource();
            using (context.RequestAborted.Register(() => hungUp.TrySetResult()))
                await hungUp.Task.WaitAsync(TimeSpan.FromSeconds(30), CancellationToken.None); // the token fires with the hang-up too
            return moved;
        }, size);
        Record(context, result);
    }

    /// <summary>Reads nothing of the request body; answers how many bytes the kernel still holds for this connection.</summary>
    private async Task UnreadAsync(HttpContext context, long expect)
    {
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        int Queued()
        {
            using var lease = FdLease.TryAcquire(connection.ClientHandle, out var l) ? l : default;
            return ZcProxy.Native.Syscalls.BytesAvailable(lease.Fd);
        }
        // Bounded: the body may still be on its way through loopback. The head's recv may have taken up to a block of it.
        for (int i = 0; i < 200 && Queued() < expect - ZeroCopyTransport.BlockSize; i++) await Task.Delay(10);
        context.Response.Headers["X-Kernel-Queued"] = Queued().ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers.Connection = "close";
        Record(context, BodyResult.Complete);
    }

    /// <summary>Waits for RequestAborted (the client went away) without reading anything.</summary>
    private async Task UntilAbortedAsync(HttpContext context)
    {
        var aborted = new TaskCompletionSource();
        using (context.RequestAborted.Register(() => aborted.TrySetResult()))
            await aborted.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Record(context, BodyResult.Complete);
    }

    private void Record(HttpContext context, BodyResult result) => Outcomes.Enqueue((context.Request.Path, result));

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await Source.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
