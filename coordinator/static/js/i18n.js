// Labels in English and Simplified Chinese. The browser's language chooses, a switch overrides and is
// remembered. Each view registers its own strings; the ones every view shares are here.

export const LANGUAGES = { en: "English", "zh-CN": "简体中文" };
const STORE = "commandpost.lang";
const dictionaries = { en: {}, "zh-CN": {} };
const listeners = [];

export function register(dicts) {
  for (const [code, entries] of Object.entries(dicts)) Object.assign(dictionaries[code], entries);
}

export function lang() {
  const chosen = localStorage.getItem(STORE);
  if (chosen && chosen in LANGUAGES) return chosen;
  // The first language the browser prefers that we have: an English speaker who also reads Chinese gets English.
  const preferred = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const code of preferred) {
    if (/^zh\b(?!-(TW|HK|MO|Hant))/i.test(code || "")) return "zh-CN";
    if (/^en\b/i.test(code || "")) return "en";
  }
  return "en";
}

export function setLang(code) {
  localStorage.setItem(STORE, code);
  translatePage();
  for (const listener of listeners) listener(code);
}

export function onLangChange(listener) {
  listeners.push(listener);
}

// t("queue.since", {n: 3}): the label in the current language, else English, else the key itself.
export function t(key, vars = {}) {
  const code = lang();
  const text = dictionaries[code][key] ?? dictionaries.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function has(key) {
  return key in dictionaries.en || key in dictionaries[lang()];
}

// Elements name their label with data-i18n (text), data-i18n-placeholder, data-i18n-title or data-i18n-aria.
export function translatePage(root = document) {
  document.documentElement.lang = lang();
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
  for (const node of root.querySelectorAll("[data-i18n-aria]")) node.setAttribute("aria-label", t(node.dataset.i18nAria));
}

// A status, agency kind, incident type or unit type by its id; the server's English label if we have none.
export function label(group, id, fallback) {
  const key = `${group}.${id}`;
  return has(key) ? t(key) : fallback || id;
}

register({
  en: {
    "app.name": "commandpost",
    "signin.title": "Sign in",
    "signin.token": "Token",
    "signin.help": "Paste the token your supervisor gave you (commandpost token --role …).",
    "signin.submit": "Sign in",
    "signin.out": "Sign out",
    "signin.wrong_role": "This token is for a {role}; this screen is for {wanted}.",
    "lang.switch": "Language",
    "nav.dispatch": "Dispatch",
    "nav.unit": "Unit terminal",
    "nav.command": "Command",
    "nav.views": "Views",
    "map.label": "Map",
    "signin.again": "Sign in again",
    "link.live": "Live",
    "link.connecting": "Connecting…",
    "link.reconnecting": "Connection lost. Reconnecting… nothing is lost, events resume where they stopped.",
    "link.unauthorized": "Your token was refused: {reason}. Sign in again.",
    "link.refused": "The server refused the live feed: {reason}",
    "error.offline": "The server cannot be reached. Check the network; nothing was changed.",
    "time.s": "{n} s",
    "time.min_s": "{m} min {s} s",
    "time.h_min": "{h} h {m} min",
    "priority": "Priority",
    "priority.short": "P{n}",
    "kind.police": "Police",
    "kind.fire": "Fire",
    "kind.ems": "EMS",
    "status.available": "Available",
    "status.dispatched": "Dispatched",
    "status.en_route": "En route",
    "status.on_scene": "On scene",
    "status.transporting": "Transporting",
    "status.at_hospital": "At hospital",
    "status.out_of_service": "Out of service",
    "status.open": "Open",
    "status.closed": "Closed",
    "legend.title": "Legend",
    "legend.station": "Station",
    "legend.incident": "Incident (priority)",
    "unit_type.patrol": "patrol car",
    "unit_type.supervisor": "sergeant",
    "unit_type.k9": "K-9",
    "unit_type.traffic": "traffic unit",
    "unit_type.engine": "engine",
    "unit_type.truck": "ladder truck",
    "unit_type.rescue": "heavy rescue",
    "unit_type.chief": "battalion chief",
    "unit_type.hazmat": "hazmat unit",
    "unit_type.brush": "brush engine",
    "unit_type.boat": "fire boat",
    "unit_type.als": "ALS ambulance",
    "unit_type.bls": "BLS ambulance",
    "unit_type.ems_supervisor": "EMS supervisor",
    "capability.law_enforcement": "law enforcement",
    "capability.tracking": "tracking",
    "capability.collision_investigation": "collision investigation",
    "capability.fire_suppression": "fire suppression",
    "capability.bls_first_response": "BLS first response",
    "capability.ladder": "ladder",
    "capability.heavy_rescue": "heavy rescue",
    "capability.extrication": "extrication",
    "capability.technical_rescue": "technical rescue",
    "capability.command": "command",
    "capability.decontamination": "decontamination",
    "capability.wildland": "wildland",
    "capability.water_rescue": "water rescue",
    "capability.transport": "patient transport",
  },
  "zh-CN": {
    "app.name": "commandpost 联合指挥",
    "signin.title": "登录",
    "signin.token": "令牌",
    "signin.help": "粘贴主管发给您的令牌（commandpost token --role …）。",
    "signin.submit": "登录",
    "signin.out": "退出",
    "signin.wrong_role": "此令牌属于{role}；本界面供{wanted}使用。",
    "lang.switch": "语言",
    "nav.dispatch": "调度",
    "nav.unit": "车载终端",
    "nav.command": "指挥",
    "nav.views": "视图",
    "map.label": "地图",
    "signin.again": "重新登录",
    "link.live": "实时",
    "link.connecting": "正在连接…",
    "link.reconnecting": "连接中断，正在重连…不会丢失任何事件，恢复后从中断处继续。",
    "link.unauthorized": "令牌被拒绝：{reason}。请重新登录。",
    "link.refused": "服务器拒绝了实时数据：{reason}",
    "error.offline": "无法连接服务器。请检查网络；未做任何更改。",
    "time.s": "{n} 秒",
    "time.min_s": "{m} 分 {s} 秒",
    "time.h_min": "{h} 小时 {m} 分",
    "priority": "优先级",
    "priority.short": "P{n}",
    "kind.police": "警察",
    "kind.fire": "消防",
    "kind.ems": "急救",
    "status.available": "可用",
    "status.dispatched": "已派遣",
    "status.en_route": "途中",
    "status.on_scene": "到场",
    "status.transporting": "转运中",
    "status.at_hospital": "在医院",
    "status.out_of_service": "停用",
    "status.open": "处理中",
    "status.closed": "已结案",
    "legend.title": "图例",
    "legend.station": "站点",
    "legend.incident": "事件（优先级）",
    "type.structure_fire": "建筑火灾",
    "type.vehicle_fire": "车辆火灾",
    "type.brush_fire": "草地/灌木火灾",
    "type.fire_alarm": "自动火警",
    "type.gas_leak": "天然气泄漏",
    "type.hazmat": "危险品泄漏",
    "type.water_rescue": "水上救援",
    "type.medical_emergency": "急症",
    "type.cardiac_arrest": "心脏/呼吸骤停",
    "type.overdose": "药物过量/中毒",
    "type.fall": "跌倒（非危重）",
    "type.traffic_collision_injury": "交通事故（有伤）",
    "type.mass_casualty": "群体伤亡事件",
    "type.shooting": "枪击",
    "type.robbery_in_progress": "抢劫进行中",
    "type.burglary_in_progress": "入室盗窃进行中",
    "type.domestic_violence": "家庭暴力",
    "type.missing_person": "人员失踪",
    "type.traffic_collision_no_injury": "交通事故（无伤）",
    "type.welfare_check": "安全探视",
    "type.technical_rescue": "技术救援（电梯、受限空间、坍塌）",
    "type.electrical_hazard": "电气危险（电线掉落、电弧）",
    "type.smoke_odor_investigation": "烟雾或异味调查",
    "type.public_assist": "公共协助",
    "unit_type.patrol": "巡逻车",
    "unit_type.supervisor": "巡逻警长",
    "unit_type.k9": "警犬组",
    "unit_type.traffic": "交警",
    "unit_type.engine": "水罐消防车",
    "unit_type.truck": "云梯车",
    "unit_type.rescue": "重型救援车",
    "unit_type.chief": "营长",
    "unit_type.hazmat": "危化品处置车",
    "unit_type.brush": "森林消防车",
    "unit_type.boat": "消防艇",
    "unit_type.als": "高级生命支持救护车",
    "unit_type.bls": "基础生命支持救护车",
    "unit_type.ems_supervisor": "急救主管",
    "capability.law_enforcement": "执法",
    "capability.tracking": "追踪",
    "capability.collision_investigation": "事故调查",
    "capability.fire_suppression": "灭火",
    "capability.bls_first_response": "基础生命支持先期处置",
    "capability.ladder": "云梯",
    "capability.heavy_rescue": "重型救援",
    "capability.extrication": "破拆救援",
    "capability.technical_rescue": "技术救援",
    "capability.command": "指挥",
    "capability.decontamination": "洗消",
    "capability.wildland": "野外灭火",
    "capability.water_rescue": "水上救援",
    "capability.transport": "病人转运",
  },
});
