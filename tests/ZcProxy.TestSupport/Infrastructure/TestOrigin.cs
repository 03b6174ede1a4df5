using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Tests.Infrastructure;

/// <summary>A real Kestrel origin on 127.0.0.1:0 that answers with its name and counts the requests it saw.</summary>
public sealed class TestOrigin : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private TestOrigin(WebApplication app, string name)
    {
        _app = app;
        Name = name;
    }

    public string Name { get; }
    public string Url { get; private set; } = "";
    public int Port => new Uri(Url).Port;
    public int Requests => Volatile.Read(ref _requests);
    public ConcurrentQueue<(string Method, string PathAndQuery, IHeaderDictionary Headers)> Seen { get; } = new();

    /// <param name="configure">Extra endpoints, mapped before the default "answer with my name" fallback.</param>
    public static async Task<TestOrigin> StartAsync(string name, Action<WebApplication>? configure = null, int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
        var app = builder.Build();
        var origin = new TestOrigin(app, name);
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref origin._requests);
            origin.Seen.Enqueue((context.Request.Method, context.Request.Path + context.Request.QueryString, context.Request.Headers));
            await next(context);
        });
        configure?.Invoke(app);
        app.MapFallback("{**path}", (HttpRequest r) => Results.Text($"{name} {r.Method} {r.Path}{r.QueryString}"));
        await app.StartAsync();
        origin.Url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return origin;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
