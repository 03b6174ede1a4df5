using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.DependencyInjection;
using ZcProxy.Tests.Infrastructure;

namespace ZcProxy.Tests.Hosting;

/// <summary>What runs for every proxied request, beyond the pipeline ProxyHost wires itself.</summary>
public sealed class RequestPipelineTests
{
    [Fact]
    public async Task NoImplicitAuthorizationMiddleware()
    {
        using var dir = new ConfigDirectory();
        dir.WriteMain("""{ "Routes": {}, "Clusters": {} }""");
        await using var proxy = await InProcessProxy.StartAsync(dir.MainFile);
        // WebApplication adds UseAuthorization in front of the app's own pipeline exactly when this service is
        // registered (YARP registers it); there, before routing, it can never apply a policy and only costs time.
        var isService = proxy.Get<IServiceProviderIsService>();
        Assert.False(isService.IsService(typeof(IAuthorizationHandlerProvider)));
        Assert.True(isService.IsService(typeof(IAuthorizationPolicyProvider))); // YARP's route validation still has it
    }
}
