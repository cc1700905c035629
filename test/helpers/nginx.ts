/**
 * nginx's main configuration for a process of our own (tests, bench): everything it
 * writes (pid, error log, temp files) under `dir`, then the given `http` block's body.
 */
export function nginxMainConfig (dir: string, http: string, connections = 256): string {
  return `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${connections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http}
}
`
}
